"""Barge-in: the wearer starts talking, the TTS stops, drops what is older and holds the rest.

Core tests drive SpeechQueue/SpeechWorker with the held fake backend of test_tts_queue (every
order is decided by events). The DDS tests run the real TTS node (pyttsx3/espeak-ng WAVs,
``pace_without_device``: no sound card here, so an utterance takes its audio's duration, as
playing it would) and send VoiceActivity over DDS: the stop is measured from the onset stamp.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
from helpers import OutputDrain, read_jsonl, spin_until
from test_tts_queue import WAIT, FakeClock, HeldBackend, _item

from proassist_ros.tts import BARGED_IN, MANIFEST, SpeechQueue, SpeechWorker
from proassist_ros.tts.backend import WavBackend

BARGE_IN_LIMIT_S = 0.3  # the target: TTS stops within 0.3 s of speech onset


def test_queue_barge_in_cancels_drops_older_and_holds():
    clock = FakeClock(100.0)
    dropped = []
    q = SpeechQueue(8, 0, clock, on_drop=lambda item, why: dropped.append((item.text, why)))
    q.push(_item("on air", stamp_s=99.0))
    active = q.pop(timeout=0)
    q.push(_item("older", stamp_s=99.5))
    q.push(_item("unstamped, received before the onset"))
    q.push(_item("newer", stamp_s=101.0))  # decided after the wearer spoke: kept
    cut = q.barge_in(onset_s=100.5, hold_s=60.0)
    assert cut is not None and cut.text == "on air" and active.cancel.is_set()
    assert active.barge_in_s == [100.5]
    assert dropped == [("older", "barge_in"), ("unstamped, received before the onset", "barge_in")]
    q.done()
    assert q.held and q.pop(timeout=0.05) is None  # nothing is said while the wearer talks
    assert not q.push(_item("late, decided before the onset", stamp_s=100.4))  # other topic,
    assert dropped[-1] == ("late, decided before the onset", "barge_in")       # no order
    q.release()
    assert not q.held and q.pop(timeout=0).item.text == "newer"


def test_hold_ends_by_itself_after_the_safety_timeout():
    q = SpeechQueue(8, 0, FakeClock())
    q.barge_in(onset_s=0.0, hold_s=0.2)
    q.push(_item("after the hold", stamp_s=1e9))
    t0 = time.monotonic()
    active = q.pop(timeout=WAIT)  # no release(): the lost "stopped talking" case
    assert active is not None and active.item.text == "after the hold"
    assert 0.15 < time.monotonic() - t0 < WAIT


def test_worker_counts_the_barge_in_and_its_stop_latency():
    clock = FakeClock(50.0)
    backend = HeldBackend()
    w = SpeechWorker(backend, max_age_s=0, clock=clock).start()
    try:
        w.submit(_item("a long instruction", stamp_s=49.0))
        assert backend.next_started() == "a long instruction"
        w.submit(_item("queued before", stamp_s=49.5))
        clock.now = 50.1  # the stop happens 0.1 s after the onset stamp (clock time)
        assert w.barge_in(onset_s=50.0, hold_s=60.0)
        deadline = time.monotonic() + WAIT
        while w.outcomes[BARGED_IN] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert w.outcomes[BARGED_IN] == 1 and w.outcomes["dropped_barge_in"] == 1
        assert w.last_barge_in_stop_s == pytest.approx(0.1)
        assert backend.finished == [("a long instruction", True)]
        assert not w.barge_in(onset_s=51.0)  # nothing on air: not a barge-in
        w.submit(_item("after the question", stamp_s=52.0))
        w.release()
        assert backend.next_started() == "after the question"
        backend.release("after the question")
    finally:
        w.close()


class _SilentWav(WavBackend):
    """A WavBackend whose synthesis writes nothing and lasts ``audio_s``: pacing alone."""

    name = "paced"

    def __init__(self, audio_s: float, **kw) -> None:
        super().__init__(play_audio=False, **kw)
        self.audio_s = audio_s

    def synthesize(self, text, wav_path) -> float:
        wav_path.write_bytes(b"")
        return self.audio_s


def test_pacing_without_a_device_lasts_the_audio_and_is_cancellable():
    paced = _SilentWav(0.3, pace_without_device=True)
    t0 = time.monotonic()
    res = paced.speak("x")
    assert 0.25 < time.monotonic() - t0 and not res.played and not res.cancelled
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    t0 = time.monotonic()
    res = _SilentWav(30.0, pace_without_device=True).speak("x", cancel=cancel)
    assert res.cancelled and time.monotonic() - t0 < 5.0
    t0 = time.monotonic()
    _SilentWav(30.0).speak("x")  # the default: no device means at once, never a fake wait
    assert time.monotonic() - t0 < 5.0


# --- over DDS, the real TTS node -------------------------------------------------------------

NODE = ["-m", "proassist_ros.ros.tts_node", "--ros-args", "-p", "play_audio:=false",
        "-p", "pace_without_device:=true"]
LONG = " ".join(["First wash the cutting board, then dry it with a clean towel."] * 6)


class Peer:
    """Guidance and VoiceActivity out; speaking and TtsStats in."""

    def __init__(self, context) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Bool

        from proassist_ros.msg import Guidance, TtsStats, VoiceActivity
        from proassist_ros.ros.tts_node import GUIDANCE_QOS, SPEAKING_QOS, STATS_QOS, VOICE_QOS

        self.node = rclpy.create_node("barge_in_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.guidance_pub = self.node.create_publisher(Guidance, "/proassist/guidance",
                                                       GUIDANCE_QOS)
        self.voice_pub = self.node.create_publisher(VoiceActivity, "/proassist/voice_activity",
                                                    VOICE_QOS)
        self.speaking: list[tuple[bool, float]] = []  # (value, node clock at receipt)
        self.stats: list = []
        qos = SPEAKING_QOS.__class__(depth=50, reliability=SPEAKING_QOS.reliability,
                                     durability=SPEAKING_QOS.durability)
        self.node.create_subscription(Bool, "/proassist/tts/speaking",
                                      lambda m: self.speaking.append((m.data, self.now())), qos)
        self.node.create_subscription(TtsStats, "/proassist/tts/stats", self.stats.append,
                                      STATS_QOS)
        self.Guidance, self.VoiceActivity = Guidance, VoiceActivity

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _stamp(self, msg, t: float) -> None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(round(t * 1e9), 1_000_000_000)

    def guidance(self, text: str, seq: int, stamp_s: float | None = None) -> None:
        msg = self.Guidance(text=text, seq=seq, session_id="s", priority=1)
        self._stamp(msg, self.now() if stamp_s is None else stamp_s)
        self.guidance_pub.publish(msg)

    def voice(self, speaking: bool) -> float:
        msg = self.VoiceActivity(speaking=speaking)
        t = self.now()
        self._stamp(msg, t)
        self.voice_pub.publish(msg)
        return t

    def spin_until(self, cond, timeout: float, what: str, log=None):
        return spin_until(self.executor, cond, timeout, what, log.text if log else None)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.mark.dds
def test_tts_node_stops_within_0_3_s_of_speech_onset(rclpy_context, spawn, tmp_path):
    out = tmp_path / "tts"
    proc = spawn([*NODE, "-p", f"output_dir:={out}"])
    log = OutputDrain(proc)
    p = Peer(rclpy_context)
    try:
        p.spin_until(lambda: p.guidance_pub.get_subscription_count() > 0
                     and p.voice_pub.get_subscription_count() > 0 and p.speaking
                     and p.stats, 30, "the TTS node to match", log)
        p.guidance(LONG, 0)
        p.spin_until(lambda: p.speaking[-1][0] is True, 20, "the long utterance on air", log)
        p.guidance("Then rinse the knife.", 1)          # queued, decided before the question
        onset = p.voice(True)
        later = onset + 0.001
        p.guidance("Your answer comes after you spoke.", 2, stamp_s=later)
        stop = p.spin_until(lambda: next((t for v, t in p.speaking if v is False
                                          and t > onset), None), 10, "speaking=false", log)
        st = p.spin_until(lambda: next((s for s in reversed(p.stats) if s.barge_ins >= 1
                                        and s.dropped_barge_in >= 1), None), 10,
                          "TtsStats with the barge-in", log)
        assert st.wearer_speaking and st.spoken == 0
        assert 0 <= st.last_barge_in_stop_s <= BARGE_IN_LIMIT_S, st.last_barge_in_stop_s
        print(f"barge-in stop: {st.last_barge_in_stop_s * 1000:.0f} ms (node), "
              f"{(stop - onset) * 1000:.0f} ms (speaking=false received here)")
        assert stop - onset <= BARGE_IN_LIMIT_S, stop - onset  # seen from outside, over DDS
        # Held: nothing is said while the wearer talks ...
        records = read_jsonl(out / MANIFEST)
        assert [(r["seq"], r["outcome"]) for r in records] == [
            (1, "dropped_barge_in"), (0, "barge_in")] or [
            (r["seq"], r["outcome"]) for r in records] == [(0, "barge_in"), (1, "dropped_barge_in")]
        assert not any(v for v, t in p.speaking if t > stop)
        # ... and the answer is spoken once they stop.
        p.voice(False)
        done = p.spin_until(lambda: (r := read_jsonl(out / MANIFEST)) and len(r) >= 3 and r,
                            30, "the held answer to be spoken", log)
        assert (done[-1]["seq"], done[-1]["outcome"]) == (2, "spoken")
        p.spin_until(lambda: any(s.spoken == 1 and not s.wearer_speaking for s in p.stats),
                     10, "stats after the answer", log)
    finally:
        p.close()
    assert not log.has("Traceback"), log.text()
    assert math.isfinite(st.last_barge_in_stop_s)


@pytest.mark.dds
def test_barge_in_false_keeps_speaking(rclpy_context, spawn, tmp_path):
    out = tmp_path / "tts"
    proc = spawn([*NODE, "-p", f"output_dir:={out}", "-p", "barge_in:=false",
                  "-p", "rate:=300"])
    log = OutputDrain(proc)
    p = Peer(rclpy_context)
    try:
        p.spin_until(lambda: p.guidance_pub.get_subscription_count() > 0 and p.speaking,
                     30, "the TTS node to match", log)
        assert p.voice_pub.get_subscription_count() == 0  # it does not even listen
        p.guidance("Fill the kettle with water, then put it on the stove.", 0)
        p.spin_until(lambda: p.speaking[-1][0] is True, 20, "on air", log)
        p.voice(True)
        recs = p.spin_until(lambda: read_jsonl(out / MANIFEST), 30, "the utterance", log)
        assert recs[0]["outcome"] == "spoken"
    finally:
        p.close()
