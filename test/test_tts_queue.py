"""SpeechQueue and SpeechWorker without ROS or audio: order, pre-emption, staleness, bounds.

A fake backend holds each utterance "on air" until the test releases it (or an interrupt cancels
it), so every ordering below is decided by events, not by timing.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
from helpers import read_jsonl

from proassist_ros.tts import (
    MANIFEST,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NORMAL,
    PRIORITY_URGENT,
    NullAudioBackend,
    SpeakResult,
    SpeechItem,
    SpeechQueue,
    SpeechWorker,
    wav_name,
)

WAIT = 10.0  # generous deadline for events; tests finish in milliseconds


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class HeldBackend:
    """speak() blocks until ``release(text)`` or its cancel Event; records what happened."""

    name = "held"

    def __init__(self) -> None:
        self.started: queue.Queue[str] = queue.Queue()
        self.finished: list[tuple[str, bool]] = []
        self._released: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.closed = False

    def _gate(self, text: str) -> threading.Event:
        with self._lock:
            return self._released.setdefault(text, threading.Event())

    def release(self, *texts: str) -> None:
        for text in texts:
            self._gate(text).set()

    def next_started(self) -> str:
        return self.started.get(timeout=WAIT)

    def synthesize(self, text: str, wav_path: Path) -> float:
        wav_path.write_bytes(b"RIFF")
        return 1.0

    def speak(self, text, wav_path=None, cancel=None) -> SpeakResult:
        cancel = cancel or threading.Event()
        gate = self._gate(text)
        self.started.put(text)
        while not gate.is_set() and not cancel.is_set():
            cancel.wait(0.005)  # two events to watch; the fake polls them
        if wav_path is not None:
            self.synthesize(text, wav_path)
        self.finished.append((text, cancel.is_set()))
        return SpeakResult(wav_path, 1.0, 0.0, not cancel.is_set(), cancel.is_set())

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _item(text: str, priority: int = PRIORITY_NORMAL, interrupt: bool = False,
          stamp_s: float | None = None, seq: int = 0) -> SpeechItem:
    return SpeechItem(text=text, priority=priority, interrupt=interrupt, stamp_s=stamp_s,
                      session_id="s1", seq=seq)


def _drain(q: SpeechQueue) -> list[str]:
    out = []
    while (active := q.pop(timeout=0)) is not None:
        out.append(active.item.text)
        q.done()
    return out


def test_priority_order_then_arrival_order():
    q = SpeechQueue(maxsize=10)
    for text, prio in [("low", PRIORITY_LOW), ("n1", PRIORITY_NORMAL), ("urgent", PRIORITY_URGENT),
                       ("n2", PRIORITY_NORMAL), ("high", PRIORITY_HIGH)]:
        assert q.push(_item(text, prio))
    assert _drain(q) == ["urgent", "high", "n1", "n2", "low"]


def test_interrupt_jumps_the_queue_and_cancels_the_active_item():
    q = SpeechQueue(maxsize=10)
    q.push(_item("current"))
    active = q.pop(timeout=0)
    q.push(_item("urgent", PRIORITY_URGENT))
    assert not active.cancel.is_set()  # priority alone never cuts anyone off
    q.push(_item("stop now", PRIORITY_LOW, interrupt=True))
    assert active.cancel.is_set()
    q.done()
    assert _drain(q) == ["stop now", "urgent"]
    assert q.stats().preempted == 1


def test_stale_items_are_dropped_and_counted_at_push_and_while_waiting():
    clock, dropped = FakeClock(), []
    q = SpeechQueue(maxsize=10, max_age_s=10.0, clock=clock,
                    on_drop=lambda item, why: dropped.append((item.text, why)))
    assert not q.push(_item("old", stamp_s=clock.now - 10.5))
    assert q.push(_item("fresh", stamp_s=clock.now - 1.0))
    assert q.push(_item("unstamped"))  # no stamp: its age counts from receipt
    assert q.push(_item("from the future", stamp_s=clock.now + 5.0))  # clock skew: keep
    clock.now += 9.5  # "fresh" is now 10.5 s old, "unstamped" 9.5 s
    assert _drain(q) == ["unstamped", "from the future"]
    assert dropped == [("old", "stale"), ("fresh", "stale")]
    assert q.stats().dropped_stale == 2 and q.stats().received == 4


def test_max_age_zero_disables_staleness():
    q = SpeechQueue(max_age_s=0.0, clock=FakeClock())
    assert q.push(_item("ancient", stamp_s=0.0))
    assert _drain(q) == ["ancient"]


def test_bounded_queue_sheds_the_least_important_oldest_item():
    dropped = []
    q = SpeechQueue(maxsize=3, on_drop=lambda item, why: dropped.append((item.text, why)))
    for text, prio in [("low1", PRIORITY_LOW), ("n1", PRIORITY_NORMAL), ("low2", PRIORITY_LOW)]:
        assert q.push(_item(text, prio))
    assert q.push(_item("n2"))  # sheds low1 (lowest priority, oldest)
    assert q.push(_item("low3", PRIORITY_LOW))  # newer guidance wins among equals: sheds low2
    assert q.push(_item("n3"))  # sheds low3
    assert not q.push(_item("low4", PRIORITY_LOW))  # the least important of all: refused
    assert dropped == [("low1", "overflow"), ("low2", "overflow"), ("low3", "overflow"),
                       ("low4", "overflow")]
    assert _drain(q) == ["n1", "n2", "n3"] and q.stats().dropped_overflow == 4


def test_pop_times_out_and_close_wakes_a_waiting_pop():
    q = SpeechQueue()
    assert q.pop(timeout=0.01) is None
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(q.pop()))
    waiter.start()
    q.close()
    waiter.join(WAIT)
    assert result == [None] and not q.push(_item("late"))


@pytest.fixture
def held(tmp_path):
    backend, speaking, clock = HeldBackend(), [], FakeClock()
    worker = SpeechWorker(backend, maxsize=8, max_age_s=10.0, clock=clock, output_dir=tmp_path,
                          on_speaking=speaking.append).start()
    yield backend, worker, speaking, clock, tmp_path
    worker.close()
    assert backend.closed


def _wait_records(path: Path, n: int) -> list[dict]:
    from helpers import wait_until

    return wait_until(lambda: (r := read_jsonl(path / MANIFEST)) and len(r) >= n and r,
                      WAIT, f"{n} records")


def test_worker_speaks_by_priority_and_interrupt_preempts_the_current_utterance(held):
    backend, worker, speaking, _, out = held
    worker.submit(_item("A long instruction", seq=0))
    assert backend.next_started() == "A long instruction"
    worker.submit(_item("B normal", seq=1))
    worker.submit(_item("C high", PRIORITY_HIGH, seq=2))
    worker.submit(_item("I watch out", PRIORITY_NORMAL, interrupt=True, seq=3))
    assert backend.next_started() == "I watch out"  # A was cut off, I went first
    backend.release("I watch out", "C high", "B normal")
    records = _wait_records(out, 4)
    assert [(r["text"][0], r["outcome"]) for r in records] == [
        ("A", "interrupted"), ("I", "spoken"), ("C", "spoken"), ("B", "spoken")]
    assert backend.finished[0] == ("A long instruction", True)
    assert speaking == [True, False] * 4
    assert sorted(p.name for p in out.glob("*.wav")) == [
        "000000_s1.wav", "000001_s1.wav", "000002_s1.wav", "000003_s1.wav"]


def test_worker_drops_guidance_that_went_stale_while_waiting(held):
    backend, worker, _, clock, out = held
    worker.submit(_item("A", stamp_s=clock.now, seq=0))
    assert backend.next_started() == "A"
    worker.submit(_item("B soon stale", stamp_s=clock.now, seq=1))
    clock.now += 30.0  # A talks for a long time
    worker.submit(_item("C fresh", stamp_s=clock.now, seq=2))
    backend.release("A", "C fresh")
    records = _wait_records(out, 3)
    # B is found stale (and logged) as soon as the queue is next touched, before A ends.
    assert [(r["seq"], r["outcome"]) for r in records] == [
        (1, "dropped_stale"), (0, "spoken"), (2, "spoken")]
    assert worker.queue.stats().dropped_stale == 1 and worker.outcomes["dropped_stale"] == 1


def test_worker_survives_a_failing_backend_and_skips_empty_text(tmp_path):
    class Boom(HeldBackend):
        def speak(self, text, wav_path=None, cancel=None):
            if text == "bad":
                raise RuntimeError("engine exploded")
            return super().speak(text, wav_path, cancel)

    backend = Boom()
    backend.release("good")
    worker = SpeechWorker(backend, output_dir=tmp_path).start()
    try:
        assert not worker.submit(_item("   "))
        worker.submit(_item("bad", seq=0))
        worker.submit(_item("good", seq=1))
        records = _wait_records(tmp_path, 2)
        assert [r["outcome"] for r in records] == ["failed", "spoken"]
        assert "engine exploded" in records[0]["error"]
    finally:
        worker.close()


def test_null_backend_keeps_the_node_running_silently(tmp_path):
    logged: list[str] = []

    class Log:
        info = warning = error = logged.append

    worker = SpeechWorker(NullAudioBackend("espeak missing", logger=Log()), output_dir=tmp_path,
                          logger=Log()).start()
    try:
        worker.submit(_item("one", seq=0))
        worker.submit(_item("two", seq=1))
        assert [r["outcome"] for r in _wait_records(tmp_path, 2)] == ["silent", "silent"]
        assert sum("TTS disabled (espeak missing)" in m for m in logged) == 1
        assert not list(tmp_path.glob("*.wav"))
    finally:
        worker.close()


def test_wav_names_are_safe_and_unique(held):
    assert wav_name(SpeechItem("x", session_id="a/b c", seq=7)) == "000007_a_b_c.wav"
    assert wav_name(SpeechItem("x")) == "000000_nosession.wav"
    backend, worker, _, _, out = held
    backend.release("same")
    worker.submit(_item("same", seq=5))
    _wait_records(out, 1)
    worker.submit(_item("same", seq=5))  # e.g. a replayed bag: keep both files
    _wait_records(out, 2)
    assert sorted(p.name for p in out.glob("*.wav")) == ["000005_s1.wav", "000005_s1_1.wav"]
