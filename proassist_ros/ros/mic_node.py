"""``/proassist/mic``: the wearer's microphone as AudioChunk messages on ``/proassist/audio``.

Captures with ``sounddevice`` (PortAudio) in blocks of ``chunk_ms`` and publishes each block as
16-bit PCM with sensor-data QoS (a late chunk is worth nothing; the ASR node keeps up or drops).
``header.stamp`` is the node clock at the capture of the chunk's first sample (the time of the
callback minus the chunk's length), so the ASR can say when a word was spoken on the same clock
as the camera's frames.

``--wav FILE`` (or the ``wav`` parameter) plays a file instead, at real time, as if it were the
microphone: chunk i is published when it would have been captured, stamped from the node clock
at the first sample plus i chunks; after the file, silence (a quiet room) until shutdown. It
exists for tests and demos; it is never chosen by default.

Where there is no PortAudio or no input device, the node exits with one line saying so (exit 2).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import IntegerRange
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time

from proassist_ros.constants import AUDIO, NAMESPACE, NS_PER_S
from proassist_ros.msg import AudioChunk
from proassist_ros.ros.node_params import declare_read_only
from proassist_ros.ros.spin import main_for
from proassist_ros.speech.audio import ENCODING, SAMPLE_RATE, read_wav

AUDIO_QOS = qos_profile_sensor_data


class MicError(RuntimeError):
    """No usable microphone (PortAudio missing, no such device, cannot open it)."""


@dataclasses.dataclass(frozen=True)
class MicParams:
    audio_device: str = ""      # sounddevice name substring or index; '': the default input
    sample_rate: int = SAMPLE_RATE
    chunk_ms: int = 50
    audio_frame_id: str = "microphone"
    wav: str = ""
    wait_for_subscribers: int = 0


_DESCRIPTIONS: dict[str, tuple[str, IntegerRange | None]] = {
    "audio_device": ("input device: index or part of its name (`python -m sounddevice` lists them; "
               "ALSA names like 'USB' or 'hw:1,0'); '': the system default", None),
    "sample_rate": ("capture rate, Hz (16000 is what the ASR uses; others are resampled)",
                    IntegerRange(from_value=8000, to_value=192000)),
    "chunk_ms": ("milliseconds of audio per AudioChunk (latency of barge-in)",
                 IntegerRange(from_value=10, to_value=1000)),
    "audio_frame_id": ("header.frame_id of the chunks", None),
    "wav": ("play this WAV file at real time instead of capturing (tests, demos)", None),
    "wait_for_subscribers": ("wav: start playing once this many subscribers are matched "
                             "(so none misses the start); 0: at once",
                             IntegerRange(from_value=0, to_value=100)),
}


def declare_params(node: Node, wav: str = "") -> MicParams:
    """Declare every parameter once (read-only; ``wav`` from --wav is the default of ``wav``)."""
    return declare_read_only(node, dataclasses.replace(MicParams(), wav=wav), _DESCRIPTIONS)


def open_input(device: str, rate: int, blocksize: int, callback: Any) -> Any:
    """A started sounddevice InputStream, or MicError with a one-line reason."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise MicError(f"cannot use a microphone: {exc} (install PortAudio: "
                       "apt-get install libportaudio2)") from None
    dev: int | str | None = int(device) if device.strip().isdigit() else (device or None)
    try:
        stream = sd.InputStream(device=dev, samplerate=rate, channels=1, dtype="int16",
                                blocksize=blocksize, callback=callback)
        stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        try:
            inputs = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        except sd.PortAudioError:
            inputs = []
        raise MicError(f"no usable input device {device or '(default)'}: {exc}; inputs: "
                       f"{', '.join(inputs) or 'none'}") from None
    return stream


class MicNode(Node):
    """Publishes AudioChunk from a sound card or (``wav``) a file at real time."""

    def __init__(self, node_name: str = "mic", *, namespace: str = NAMESPACE, wav: str = "",
                 **kwargs: Any) -> None:
        super().__init__(node_name, namespace=namespace, **kwargs)
        self.params = p = declare_params(self, wav)
        self._pub = self.create_publisher(AudioChunk, AUDIO, AUDIO_QOS)
        self._chunk = max(1, p.sample_rate * p.chunk_ms // 1000)
        self._stop = threading.Event()
        self.published = 0
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        if p.wav:
            audio = read_wav(p.wav)  # AudioError names the file and the reason
            self._samples = audio.samples
            self._rate = SAMPLE_RATE
            self._chunk = max(1, SAMPLE_RATE * p.chunk_ms // 1000)
            self._thread = threading.Thread(target=self._play_file, name="mic-wav", daemon=True)
            self._thread.start()
            what = f"file {p.wav} ({audio.duration_s:.1f} s, {audio.source_rate} Hz) at real time"
        else:
            self._rate = p.sample_rate
            self._stream = open_input(p.audio_device, p.sample_rate, self._chunk, self._on_block)
            what = f"device {p.audio_device or '(default)'} at {p.sample_rate} Hz"
        self.get_logger().info(f"microphone: {what}, {p.chunk_ms} ms chunks on "
                               f"{self._pub.topic_name}")

    def _publish(self, samples: np.ndarray, stamp_ns: int) -> None:
        if not self.context.ok():
            return
        msg = AudioChunk(sample_rate=self._rate, channels=1, encoding=ENCODING,
                         data=samples.astype("<i2").tobytes())
        msg.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
        msg.header.frame_id = self.params.audio_frame_id
        self._pub.publish(msg)
        self.published += 1

    def _on_block(self, block: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """PortAudio's thread: the block ends now, so its first sample was ``frames`` ago."""
        if status:
            self.get_logger().warning(f"microphone: {status}", throttle_duration_sec=5.0)
        now = self.get_clock().now().nanoseconds
        self._publish(block[:, 0].copy(), now - int(frames * NS_PER_S / self._rate))

    def _play_file(self) -> None:
        chunk_s = self._chunk / self._rate
        while (self._pub.get_subscription_count() < self.params.wait_for_subscribers
               and not self._stop.wait(0.05)):
            pass
        start_ns = self.get_clock().now().nanoseconds
        start = time.monotonic()
        silence = np.zeros(self._chunk, np.int16)
        i = 0
        while not self._stop.is_set() and self.context.ok():
            # A microphone delivers a chunk once it has been captured: wait until its end.
            if self._stop.wait(max(0.0, start + (i + 1) * chunk_s - time.monotonic())):
                break
            part = self._samples[i * self._chunk:(i + 1) * self._chunk]
            if part.size < self._chunk:
                part = np.concatenate([part, silence[: self._chunk - part.size]])
            try:
                self._publish(part, start_ns + round(i * chunk_s * NS_PER_S))
            except Exception:  # noqa: BLE001 - the context went away during shutdown
                break
            i += 1

    def destroy_node(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
        if self._thread is not None:
            self._thread.join(2.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """``proassist_mic_node [--wav FILE] [--ros-args ...]``."""
    from rclpy.utilities import remove_ros_args

    own = remove_ros_args(list(sys.argv if args is None else args))[1:]
    if own and not (own[:1] == ["--wav"] and len(own) == 2):
        print(f"proassist_mic_node: unknown arguments {own} (usage: proassist_mic_node "
              "[--wav FILE] [--ros-args ...])", file=sys.stderr)
        return 2
    wav = own[1] if own else ""
    return main_for("proassist_mic_node", lambda _argv: [MicNode(wav=wav)], SingleThreadedExecutor,
                    args)


if __name__ == "__main__":
    sys.exit(main())
