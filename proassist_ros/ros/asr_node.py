"""``/proassist/asr``: the wearer's speech to stamped text, biased toward the current task.

Audio (AudioChunk on ``/proassist/audio``) goes through the VAD in the subscription callback,
which is cheap (~1 ms per 50 ms chunk), so speech onsets are published on
``/proassist/voice_activity`` at once: the TTS node stops talking on them (barge-in). Each
finished utterance is decoded on a worker thread (decoding takes a fraction of the utterance's
length, and must never delay the next onset) and published as an Utterance on
``/proassist/user_utterance_stamped``, stamped with when the wearer STARTED speaking on the
microphone's clock, so the assistant places the turn where it was said, not where the
recogniser finished. Also as plain text on ``~/text`` (std_msgs/String) for UIs and logs.

The recogniser's language model follows the task (``/proassist/task``, latched; or the latched
``/proassist/task_state``'s goal and steps when no Task was published): speech/bias.py.
Parameters are read once at start (read-only).
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from std_msgs.msg import String

from proassist_ros.constants import (
    AUDIO,
    NAMESPACE,
    NS_PER_S,
    TASK,
    TASK_STATE,
    USER_UTTERANCE_STAMPED,
    VOICE_ACTIVITY,
)
from proassist_ros.msg import AudioChunk, Task, TaskState, Utterance, VoiceActivity
from proassist_ros.ros.node_params import declare_read_only
from proassist_ros.ros.spin import main_for
from proassist_ros.speech.asr import BACKENDS, make_recognizer
from proassist_ros.speech.audio import ENCODING, pcm_from_bytes
from proassist_ros.speech.vad import SpeechEnd, SpeechStart, VadConfig, VoiceDetector

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
GAP_S = 0.5  # a jump in chunk stamps larger than this restarts the VAD (lost audio, a new mic)


@dataclasses.dataclass(frozen=True)
class AsrParams:
    asr_backend: str = "pocketsphinx"
    asr_model_dir: str = ""
    task_bias: bool = True
    vad_aggressiveness: int = 3
    end_silence_s: float = 0.6
    max_utterance_s: float = 20.0


_DESCRIPTIONS: dict[str, tuple[str, Any]] = {
    "asr_backend": (f"recogniser: {' or '.join(BACKENDS)} (needs asr_model_dir)", None),
    "asr_model_dir": ("faster-whisper: local CTranslate2 model directory", None),
    "task_bias": ("bias the language model toward the current task's words and questions",
                  None),
    "vad_aggressiveness": ("webrtcvad mode, 0 (most speech) .. 3 (fewest false alarms)",
                           IntegerRange(from_value=0, to_value=3)),
    "end_silence_s": ("silence that ends an utterance, s",
                      FloatingPointRange(from_value=0.1, to_value=5.0)),
    "max_utterance_s": ("a longer utterance is cut and decoded here, s",
                        FloatingPointRange(from_value=1.0, to_value=120.0)),
}


def declare_params(node: Node) -> AsrParams:
    """Declare every parameter once (read-only) and read them into an AsrParams."""
    return declare_read_only(node, AsrParams(), _DESCRIPTIONS)


def _seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _stamp(t_s: float) -> Any:
    return Time(nanoseconds=round(t_s * NS_PER_S)).to_msg()


class AsrNode(Node):
    """VAD + recognition of ``/proassist/audio``; publishes voice activity and utterances."""

    def __init__(self, node_name: str = "asr", *, namespace: str = NAMESPACE,
                 **kwargs: Any) -> None:
        super().__init__(node_name, namespace=namespace, **kwargs)
        self.params = p = declare_params(self)
        if p.asr_backend not in BACKENDS:
            raise ValueError(f"asr_backend must be one of {BACKENDS}, got {p.asr_backend!r}")
        self.recognizer = make_recognizer(p.asr_backend, p.asr_model_dir, bias=p.task_bias)
        self.vad = VoiceDetector(VadConfig(aggressiveness=p.vad_aggressiveness,
                                           end_silence_s=p.end_silence_s,
                                           max_utterance_s=p.max_utterance_s))
        self._next_t: float | None = None
        self._warned_format = False
        self._have_task = False
        self.recognised = 0
        self._jobs: queue.SimpleQueue[SpeechEnd | None] = queue.SimpleQueue()
        self._voice_pub = self.create_publisher(VoiceActivity, VOICE_ACTIVITY, RELIABLE)
        self._utt_pub = self.create_publisher(Utterance, USER_UTTERANCE_STAMPED, RELIABLE)
        self._text_pub = self.create_publisher(String, "~/text", RELIABLE)
        self._subs = [
            self.create_subscription(AudioChunk, AUDIO, self._on_audio, qos_profile_sensor_data),
            self.create_subscription(Task, TASK, self._on_task, LATCHED),
            self.create_subscription(TaskState, TASK_STATE, self._on_task_state, LATCHED),
        ]
        self._worker = threading.Thread(target=self._decode_loop, name="asr-decode", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"recognising {self._subs[0].topic_name} with {self.recognizer.name} (task bias "
            f"{'on' if p.task_bias else 'off'}) -> {self._utt_pub.topic_name}")

    # --- task bias ----------------------------------------------------------------------
    def _on_task(self, msg: Task) -> None:
        self._have_task = True
        self._set_task(msg.goal, msg.knowledge, list(msg.steps))

    def _on_task_state(self, msg: TaskState) -> None:
        if not self._have_task and (msg.goal or msg.steps):
            self._set_task(msg.goal, "", list(msg.steps))

    def _set_task(self, goal: str, knowledge: str, steps: list[str]) -> None:
        self.recognizer.set_task(goal, knowledge, steps)
        unknown = getattr(self.recognizer, "unknown_words", [])
        self.get_logger().info(f"task bias: {goal[:60]!r}, {len(steps)} steps"
                               + (f" (not in the dictionary: {', '.join(unknown[:8])})"
                                  if unknown else ""))

    # --- audio -> VAD (executor thread) ---------------------------------------------------
    def _on_audio(self, msg: AudioChunk) -> None:
        if msg.encoding != ENCODING or msg.sample_rate <= 0 or msg.channels < 1:
            if not self._warned_format:
                self._warned_format = True
                self.get_logger().error(f"dropping audio: encoding {msg.encoding!r}, "
                                        f"{msg.sample_rate} Hz, {msg.channels} ch (want s16le)")
            return
        samples = pcm_from_bytes(bytes(msg.data), msg.channels, msg.sample_rate)
        t0 = _seconds(msg.header.stamp)
        if self._next_t is not None and abs(t0 - self._next_t) > GAP_S:
            self._handle(self.vad.flush())
            self.vad.reset()
        self._next_t = t0 + samples.size / 16000.0
        self._handle(self.vad.feed(samples, t0))

    def _handle(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, SpeechStart):
                self._voice(ev.t_s, True)
            elif isinstance(ev, SpeechEnd):
                self._voice(ev.end_s, False)
                self._jobs.put(ev)

    def _voice(self, t_s: float, speaking: bool) -> None:
        msg = VoiceActivity(speaking=speaking)
        msg.header.stamp = _stamp(t_s)
        self._voice_pub.publish(msg)

    # --- recognition (worker thread) ------------------------------------------------------
    def _decode_loop(self) -> None:
        while (seg := self._jobs.get()) is not None:
            try:
                result = self.recognizer.transcribe(seg.samples)
            except Exception as exc:  # noqa: BLE001 - one bad utterance must not end the node
                self.get_logger().error(f"recognition failed: {type(exc).__name__}: {exc}")
                continue
            if not result.text or not self.context.ok():
                continue
            msg = Utterance(text=result.text, confidence=result.confidence,
                            source=f"asr:{self.recognizer.name}")
            msg.header.stamp = _stamp(seg.start_s)
            msg.header.frame_id = "microphone"
            msg.end_stamp = _stamp(seg.end_s)
            try:
                self._utt_pub.publish(msg)
                self._text_pub.publish(String(data=result.text))
            except Exception:  # noqa: BLE001 - shutting down
                break
            self.recognised += 1
            self.get_logger().info(f"heard ({seg.duration_s:.1f} s from "
                                   f"{seg.start_s:.2f}): {result.text!r}")

    def destroy_node(self) -> None:
        self._jobs.put(None)
        self._worker.join(5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """``proassist_asr_node [--ros-args ...]``: spin until SIGINT/SIGTERM."""
    return main_for("proassist_asr_node", lambda _argv: [AsrNode()], SingleThreadedExecutor, args)


if __name__ == "__main__":
    sys.exit(main())
