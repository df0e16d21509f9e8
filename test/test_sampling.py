"""ROS-free tests of the frame sampler, the latest-frame mailbox and the stats windows."""

from __future__ import annotations

import itertools
import threading

import pytest

from proassist_ros.constants import NS_PER_S
from proassist_ros.runtime.sampling import (
    FpsGate,
    FrameBacklog,
    RateMeter,
    StatsWindow,
    percentile,
)

T0 = 1_700_000_000 * NS_PER_S  # a realistic epoch stamp: float seconds would lose nanoseconds


def _kept(gate: FpsGate, stamps: list[int]) -> list[int]:
    return [s for s in stamps if gate.offer(s)]


def test_gate_keeps_every_fifth_frame_of_10hz_at_2fps():
    stamps = [T0 + i * 100_000_000 for i in range(50)]
    kept = _kept(FpsGate(2.0), stamps)
    assert kept == stamps[::5]
    assert all(b - a == NS_PER_S // 2 for a, b in itertools.pairwise(kept))


def test_gate_is_deterministic_and_independent_of_arrival():
    stamps = [T0 + i * 33_333_333 for i in range(300)]  # 30 Hz camera
    first, second = _kept(FpsGate(2.0), stamps), _kept(FpsGate(2.0), stamps)
    assert first == second
    assert len(first) == 20  # 10 s of stream at 2 fps


def test_gate_jittered_stamps_stay_on_grid():
    # 10 Hz with +-20 ms jitter: one frame per 0.5 s grid cell, never two.
    jitter = [0, 15, -12, 20, -20, 3, -7, 11, -19, 8]
    stamps = [T0 + i * 100_000_000 + jitter[i % 10] * 1_000_000 for i in range(100)]
    kept = _kept(FpsGate(2.0), stamps)
    cells = [(s - T0) // (NS_PER_S // 2) for s in kept]
    assert len(cells) == len(set(cells))
    assert 19 <= len(kept) <= 20


def test_gate_gap_then_resume_on_grid():
    gate = FpsGate(2.0)
    assert gate.offer(T0)
    assert gate.offer(T0 + 10 * NS_PER_S + 100_000_000)  # stream paused 10 s
    assert not gate.offer(T0 + 10 * NS_PER_S + 400_000_000)
    assert gate.offer(T0 + 10 * NS_PER_S + 500_000_000)  # next grid point after the gap


def test_gate_time_going_backwards_reanchors():
    gate = FpsGate(2.0)
    assert _kept(gate, [T0, T0 + 100_000_000, T0 + 500_000_000]) == [T0, T0 + 500_000_000]
    assert gate.offer(T0)  # bag looped: keep and re-anchor
    assert not gate.offer(T0 + 100_000_000)
    assert gate.offer(T0 + 500_000_000)


def test_gate_equal_stamps_kept_once():
    gate = FpsGate(2.0)
    assert gate.offer(T0)
    assert not gate.offer(T0)


def test_gate_set_fps_and_reset():
    gate = FpsGate(2.0)
    assert gate.period_s == 0.5
    assert gate.offer(T0)
    gate.set_fps(10.0)
    assert gate.offer(T0 + 100_000_000)
    gate.reset()
    assert gate.offer(T0 + 150_000_000)


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan")])
def test_gate_rejects_bad_fps(fps):
    with pytest.raises(ValueError, match="fps"):
        FpsGate(fps)


def test_backlog_depth_one_is_latest_wins_and_reports_replaced():
    box: FrameBacklog[int] = FrameBacklog(1)
    assert box.put(1) is None
    assert box.put(2) == 1
    assert box.get(timeout=0) == [2]
    assert box.get(timeout=0) is None
    box.put(3)
    assert box.clear() == [3]
    assert box.get(timeout=0) is None


def test_backlog_keeps_order_drops_oldest_and_shrinks():
    box: FrameBacklog[int] = FrameBacklog(3)
    dropped = [box.put(i) for i in range(5)]
    assert dropped == [None, None, None, 0, 1]
    assert box.get(timeout=0) == [2, 3, 4]
    for i in range(3):
        box.put(i)
    assert box.set_depth(1) == [0, 1] and box.depth == 1
    assert box.get(timeout=0) == [2]
    with pytest.raises(ValueError):
        FrameBacklog(0)


def test_backlog_wakes_worker_and_close_unblocks():
    box: FrameBacklog[str] = FrameBacklog(1)
    got: list[list[str] | None] = []
    worker = threading.Thread(target=lambda: got.append(box.get(timeout=10)))
    worker.start()
    box.put("frame")
    worker.join(timeout=5)
    assert got == [["frame"]]

    waiter = threading.Thread(target=lambda: got.append(box.get(timeout=30)))
    waiter.start()
    box.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and got[-1] is None
    assert box.closed
    box.reopen()
    box.put("again")
    assert box.get(timeout=0) == ["again"]


def test_backlog_slow_consumer_sees_only_newest_at_depth_one():
    box: FrameBacklog[int] = FrameBacklog(1)
    replaced = sum(box.put(i) is not None for i in range(100))
    assert replaced == 99 and box.get(timeout=0) == [99]


def test_percentile_nearest_rank():
    assert percentile([], 50) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([3.0], 95) == 3.0


def test_stats_window_rtf_and_percentiles():
    window = StatsWindow(window_s=10.0)
    for i in range(20):  # 2 fps, each frame takes 0.25 s: half real time
        window.add(100.0 + i * 0.5, 0.25)
    assert window.real_time_factor(0.5) == pytest.approx(0.5)
    p50, p95 = window.percentiles()
    assert p50 == p95 == 0.25
    window.add(200.0, 2.0)  # older samples leave the 10 s stream window
    assert window.real_time_factor(0.5) == pytest.approx(4.0)
    window.add(50.0, 0.1)  # time went backwards: new window
    assert window.percentiles() == (0.1, 0.1)
    window.clear()
    assert window.real_time_factor(0.5) == 0.0


def test_rate_meter_measures_and_decays():
    now = [0.0]
    meter = RateMeter(window_s=5.0, clock=lambda: now[0])
    assert meter.rate_hz() == 0.0
    for _ in range(21):
        meter.tick()
        now[0] += 0.1
    assert meter.rate_hz() == pytest.approx(10.0, rel=0.01)
    now[0] += 2.0
    assert 0 < meter.rate_hz() < 10.0
    now[0] += 10.0
    assert meter.rate_hz() == 0.0
