"""``/proassist/tts``: speaks ``/proassist/guidance`` with pyttsx3/espeak-ng, offline.

A thin rclpy shell around the ROS-free core in ``proassist_ros.tts``: the subscription callback
only converts a Guidance message into a SpeechItem and queues it (it never blocks on audio); one
worker thread owns the backend, synthesizes, plays through ``aplay`` when a sound card exists,
and reports honestly on ``~/speaking`` (std_msgs/Bool, transient local: true exactly while an
utterance is being synthesized or played). Priority, interrupt pre-emption and dropping of stale
guidance (older than ``max_age_s`` by header stamp, on the node's clock so sim time works) are
the SpeechQueue's. With ``output_dir`` set, each utterance is kept as ``<seq>_<session>.wav``
next to ``utterances.jsonl`` (what was said, in order, with queue delay and drops).

Barge-in (``barge_in``, default true): a VoiceActivity onset on ``/proassist/voice_activity``
(from the ASR node) stops the utterance in progress at once, drops queued guidance decided before
the onset, and holds the rest until the wearer has stopped (speaking=false) or
``barge_in_hold_s`` has passed. ``~/stats`` (TtsStats, 1 Hz and on change) counts it all.

Parameters are read once at start (declared read-only); restart the node to change them.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from proassist_ros.constants import (  # relative: /proassist/guidance by default
    GUIDANCE,
    NAMESPACE,
    VOICE_ACTIVITY,
)
from proassist_ros.msg import Guidance, TtsStats, VoiceActivity
from proassist_ros.ros.node_params import declare_read_only
from proassist_ros.ros.spin import main_for
from proassist_ros.tts import SpeechItem, SpeechWorker, TtsBackend, make_backend

SPEAKING_TOPIC = "~/speaking"  # /proassist/tts/speaking
STATS_TOPIC = "~/stats"  # /proassist/tts/stats
GUIDANCE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
SPEAKING_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
VOICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
STATS_QOS = VOICE_QOS
STATS_PERIOD_S = 1.0


@dataclasses.dataclass(frozen=True)
class TtsParams:
    """The node's parameters, typed; defaults are the declared defaults."""

    output_dir: str = ""
    voice: str = "en-us"
    rate: int = 170
    volume: float = 1.0
    max_age_s: float = 10.0
    queue_size: int = 8
    play_audio: bool = True
    barge_in: bool = True
    barge_in_hold_s: float = 8.0
    pace_without_device: bool = False


_DESCRIPTIONS: dict[str, tuple[str, Any]] = {
    "output_dir": ("directory for one WAV per utterance + utterances.jsonl; '' = keep none", None),
    "voice": ("espeak-ng voice name or language, e.g. en-us, en-gb", None),
    "rate": ("speaking rate, words per minute", IntegerRange(from_value=60, to_value=450)),
    "volume": ("speech volume, 0..1", FloatingPointRange(from_value=0.0, to_value=1.0)),
    "max_age_s": ("drop guidance older than this (header stamp vs now); <= 0: never", None),
    "queue_size": ("utterances waiting at most; the least important is shed when full",
                   IntegerRange(from_value=1, to_value=1000)),
    "play_audio": ("play through aplay when a sound card exists (else WAV files only)", None),
    "barge_in": ("stop speaking when the wearer starts talking (voice_activity), hold guidance "
                 "until they stop", None),
    "barge_in_hold_s": ("hold guidance at most this long after an onset without an end",
                        FloatingPointRange(from_value=0.0, to_value=120.0)),
    "pace_without_device": ("no sound card: take the audio's duration per utterance as if "
                            "played (tests and demos of barge-in); false: WAV only, at once",
                            None),
}


def declare_params(node: Node) -> TtsParams:
    """Declare every parameter once (read-only) and read them into a TtsParams."""
    return declare_read_only(node, TtsParams(), _DESCRIPTIONS)


def guidance_to_item(msg: Guidance) -> SpeechItem:
    """Guidance -> SpeechItem; an unset (zero) header stamp means "age unknown: use receipt"."""
    stamp = msg.header.stamp
    stamp_s = stamp.sec + stamp.nanosec * 1e-9 if (stamp.sec or stamp.nanosec) else None
    return SpeechItem(text=msg.text, priority=int(msg.priority), interrupt=bool(msg.interrupt),
                      stamp_s=stamp_s, session_id=msg.session_id, seq=int(msg.seq))


class TtsNode(Node):
    """The TTS node; construct it in any executor (the bringup runs it next to the assistant).

    ``backend`` replaces the pyttsx3 backend (tests, other engines); the node then owns it.
    """

    def __init__(self, node_name: str = "tts", *, namespace: str = NAMESPACE,
                 backend: TtsBackend | None = None, **kwargs: Any) -> None:
        super().__init__(node_name, namespace=namespace, **kwargs)
        self.params = p = declare_params(self)
        log = self.get_logger()
        self._speaking_pub = self.create_publisher(Bool, SPEAKING_TOPIC, SPEAKING_QOS)
        self._speaking_pub.publish(Bool(data=False))
        self.wearer_speaking = False
        self._stats_pub = self.create_publisher(TtsStats, STATS_TOPIC, STATS_QOS)
        self._last_stats: tuple | None = None
        self.backend = backend or make_backend(p.voice, p.rate, p.volume,
                                               play_audio=p.play_audio, logger=log,
                                               pace_without_device=p.pace_without_device)
        self.worker = SpeechWorker(
            self.backend, maxsize=p.queue_size, max_age_s=p.max_age_s, clock=self._now_s,
            output_dir=p.output_dir or None, on_speaking=self._publish_speaking, logger=log,
            on_record=lambda _r: self._stats_changed(),
        ).start()
        self._stats_timer = self.create_timer(STATS_PERIOD_S, self._publish_stats)
        self._voice_sub = (self.create_subscription(VoiceActivity, VOICE_ACTIVITY,
                                                    self._on_voice, VOICE_QOS)
                           if p.barge_in else None)
        self._sub = self.create_subscription(Guidance, GUIDANCE, self._on_guidance,
                                             GUIDANCE_QOS)
        log.info(f"speaking {self._sub.topic_name} with {self.backend.name} "
                 f"(voice {p.voice}, {p.rate} wpm, max age {p.max_age_s} s, "
                 f"queue {p.queue_size}, WAVs {'in ' + p.output_dir if p.output_dir else 'off'})")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_guidance(self, msg: Guidance) -> None:
        self.worker.submit(guidance_to_item(msg))

    def _on_voice(self, msg: VoiceActivity) -> None:
        stamp = msg.header.stamp
        onset_s = stamp.sec + stamp.nanosec * 1e-9 if (stamp.sec or stamp.nanosec) else self._now_s()
        self.wearer_speaking = bool(msg.speaking)
        if msg.speaking:
            if self.worker.barge_in(onset_s, self.params.barge_in_hold_s):
                self.get_logger().info("barge-in: the wearer started talking, stopped speaking")
        else:
            self.worker.release()
        self._stats_changed()

    def stats(self) -> TtsStats:
        """The counters now (the worker's outcomes)."""
        o = self.worker.outcomes
        msg = TtsStats(spoken=o["spoken"], interrupted=o["interrupted"], failed=o["failed"],
                       dropped_stale=o["dropped_stale"], dropped_overflow=o["dropped_overflow"],
                       barge_ins=o["barge_in"], dropped_barge_in=o["dropped_barge_in"],
                       wearer_speaking=self.wearer_speaking)
        last = self.worker.last_barge_in_stop_s
        msg.last_barge_in_stop_s = float(last) if last == last else -1.0  # nan: none yet
        return msg

    def _stats_changed(self) -> None:
        """Publish at once when a counter or the wearer's state changed (any thread)."""
        msg = self.stats()
        key = (msg.spoken, msg.interrupted, msg.failed, msg.dropped_stale, msg.dropped_overflow,
               msg.barge_ins, msg.dropped_barge_in, msg.wearer_speaking)
        if key != self._last_stats:
            self._last_stats = key
            self._publish_stats(msg)

    def _publish_stats(self, msg: TtsStats | None = None) -> None:
        if not self.context.ok():
            return
        msg = msg or self.stats()
        msg.header.stamp = self.get_clock().now().to_msg()
        try:
            self._stats_pub.publish(msg)
        except Exception as exc:  # noqa: BLE001 - e.g. during shutdown from the worker thread
            self.get_logger().debug(f"stats not published: {exc}")

    def _publish_speaking(self, value: bool) -> None:
        if self.context.ok():
            self._speaking_pub.publish(Bool(data=value))

    def destroy_node(self) -> None:
        """Stop speaking and the worker before the publishers go away."""
        self.worker.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """``proassist_tts_node [--ros-args ...]``: spin until SIGINT/SIGTERM, then exit cleanly."""
    return main_for("proassist_tts_node", lambda _argv: [TtsNode()], SingleThreadedExecutor, args)


if __name__ == "__main__":
    sys.exit(main())
