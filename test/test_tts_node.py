"""The TTS node over real DDS: as a separate process (``python -m proassist_ros.ros.tts_node``)
and in-process in an external executor, as the bringup runs it.

Waiting is done by spinning until a condition holds (messages, files, the utterance log), each
with a deadline; the order of utterances is read from ``utterances.jsonl``, which the node's one
speaking thread appends in the order things happen.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import OutputDrain, read_jsonl, spin_until

from proassist_ros.tts import MANIFEST, wav_info

NODE = ["-m", "proassist_ros.ros.tts_node", "--ros-args"]
SENTENCES = ["Now take the knife and cut the tomato in half.",
             "Put both halves on the plate, cut side down."]
LONG = " ".join(["First wash the cutting board, then dry it with a clean towel."] * 24)


class Harness:
    """A test node with a Guidance publisher and a /proassist/tts/speaking recorder."""

    def __init__(self, context) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Bool

        from proassist_ros.msg import Guidance
        from proassist_ros.ros.tts_node import GUIDANCE_QOS, SPEAKING_QOS

        self.node = rclpy.create_node("tts_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Guidance, "/proassist/guidance", GUIDANCE_QOS)
        self.speaking: list[bool] = []
        # Same durability as the node's publisher, but a deep reader cache: a true/false pair
        # published within milliseconds must both be kept until we take them.
        reader_qos = SPEAKING_QOS.__class__(depth=50, reliability=SPEAKING_QOS.reliability,
                                            durability=SPEAKING_QOS.durability)
        self.sub = self.node.create_subscription(
            Bool, "/proassist/tts/speaking", lambda m: self.speaking.append(m.data), reader_qos)
        self.Guidance = Guidance

    def guidance(self, text: str, seq: int, *, age_s: float = 0.0, interrupt: bool = False,
                 priority: int = 1):
        msg = self.Guidance(text=text, seq=seq, session_id="sess", interrupt=interrupt,
                            priority=priority)
        now_ns = self.node.get_clock().now().nanoseconds - int(age_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
        self.pub.publish(msg)

    def spin_until(self, cond, timeout: float, what: str, log=None):
        return spin_until(self.executor, cond, timeout, what, log.text if log else None)

    def connect(self, log=None) -> None:
        """Both directions matched and the latched initial 'not speaking' received."""
        self.spin_until(lambda: self.pub.get_subscription_count() > 0
                        and self.sub.get_publisher_count() > 0 and self.speaking == [False],
                        20, "the TTS node to match and latch speaking=false", log)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _records(out: Path, n: int):
    return lambda: (r := read_jsonl(out / MANIFEST)) and len(r) >= n and r


def _stop(proc, log: OutputDrain) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, log.text()
    assert not log.has("Traceback") and not log.has("Audio saved to"), log.text()


@pytest.mark.dds
def test_node_speaks_guidance_to_wavs_and_reports_speaking(rclpy_context, spawn, tmp_path):
    t0 = time.monotonic()
    out = tmp_path / "tts"
    proc = spawn([*NODE, "-p", f"output_dir:={out}", "-p", "play_audio:=false"])
    log = OutputDrain(proc)
    h = Harness(rclpy_context)
    try:
        h.connect(log)
        h.guidance(SENTENCES[0], 0)
        h.guidance(SENTENCES[1], 1)
        h.guidance("This is half a minute old.", 2, age_s=30.0)  # max_age_s defaults to 10
        records = h.spin_until(_records(out, 3), 20, "3 utterance records", log)
        h.spin_until(lambda: h.speaking[-1] is False and len(h.speaking) >= 3, 10,
                     "speaking to fall back to false", log)
    finally:
        h.close()
    assert sorted((r["seq"], r["outcome"]) for r in records) == [
        (0, "spoken"), (1, "spoken"), (2, "dropped_stale")]
    wavs = sorted(out.glob("*.wav"))
    assert [w.name for w in wavs] == ["000000_sess.wav", "000001_sess.wav"]
    for wav in wavs:
        info = wav_info(wav)
        assert 0.5 < info.duration_s < 10.0 and info.rms > 0.02, (wav.name, info)
    # Honest speaking: starts false (latched), true while an utterance is produced, ends false.
    assert h.speaking[0] is False and True in h.speaking and h.speaking[-1] is False
    assert h.speaking.count(True) <= 2  # one per spoken utterance, none for the stale one
    _stop(proc, log)
    assert time.monotonic() - t0 < 30


@pytest.mark.dds
def test_interrupt_is_spoken_before_queued_guidance(rclpy_context, spawn, tmp_path):
    """A long utterance is on air (speaking=true seen), two normal ones queue behind it, then an
    interrupt arrives: it must cut the long one off and go before the queued ones. The long text
    keeps the engine busy ~0.5 s, far longer than the three publishes take."""
    out = tmp_path / "tts"
    proc = spawn([*NODE, "-p", f"output_dir:={out}", "-p", "play_audio:=false",
                  "-p", "rate:=80"])
    log = OutputDrain(proc)
    h = Harness(rclpy_context)
    try:
        h.connect(log)
        h.guidance(LONG, 0)
        h.spin_until(lambda: True in h.speaking, 10, "the long utterance to start", log)
        h.guidance("Then rinse the knife.", 1)
        h.guidance("Then put the knife away.", 2)
        h.guidance("Stop, the pan is burning!", 3, interrupt=True, priority=1)
        records = h.spin_until(_records(out, 4), 30, "4 utterance records", log)
    finally:
        h.close()
    assert [(r["seq"], r["outcome"]) for r in records] == [
        (0, "interrupted"), (3, "spoken"), (1, "spoken"), (2, "spoken")], records
    assert wav_info(out / "000003_sess.wav").duration_s > 1.0
    _stop(proc, log)


@pytest.mark.dds
def test_node_in_an_external_executor_reads_typed_parameters(rclpy_context, tmp_path):
    from rclpy.parameter import Parameter

    from proassist_ros.ros.tts_node import TtsNode, TtsParams

    out = tmp_path / "inproc"
    node = TtsNode(context=rclpy_context, parameter_overrides=[
        Parameter("output_dir", value=str(out)), Parameter("play_audio", value=False),
        Parameter("rate", value=150), Parameter("max_age_s", value=5.0)])
    h = Harness(rclpy_context)
    h.executor.add_node(node)
    try:
        assert node.get_fully_qualified_name() == "/proassist/tts"
        assert node.params == TtsParams(output_dir=str(out), rate=150, max_age_s=5.0,
                                        play_audio=False)
        h.connect()
        h.guidance("Hello from the same process.", 7)
        h.spin_until(_records(out, 1), 15, "one utterance")
        assert (out / "000007_sess.wav").exists()
    finally:
        h.executor.remove_node(node)
        node.destroy_node()
        h.close()


@pytest.mark.dds
def test_invalid_parameter_exits_with_a_message(spawn):
    proc = spawn([*NODE, "-p", "volume:=2.0", "-p", "play_audio:=false"])
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2, out
    assert "volume" in out


def test_default_dds_profile_is_applied_only_when_unset(monkeypatch):
    from proassist_ros.ros import dds_profile

    monkeypatch.delenv(dds_profile.ENV, raising=False)
    path = dds_profile.apply_default_profile()
    assert path is not None and Path(path).is_file() and path.endswith("fastdds_profile.xml")
    assert dds_profile.os.environ[dds_profile.ENV] == path
    monkeypatch.setenv(dds_profile.ENV, "/somewhere/else.xml")
    assert dds_profile.apply_default_profile() == "/somewhere/else.xml"  # the user's choice wins
