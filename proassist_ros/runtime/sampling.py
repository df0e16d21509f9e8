"""Frame sampling, the frame backlog and the stats windows of the assistant node.

ROS-free on purpose: the node's determinism under bag replay and sim time rests on these, so
they are tested directly (test/test_sampling.py) without DDS.

- :class:`FpsGate` keeps frames by their *header stamp*, never by arrival time, so which frames
  are processed depends only on the stamps (same bag, same frames, at any replay rate).
  :func:`sampled_frames` applies the very same gate to a recorded episode, so offline
  evaluation, training and the demo see the frames the live node would.
- :class:`FrameBacklog` hands the kept frames to one worker thread, bounded and drop-oldest.
  The worker always takes everything waiting, and the engine feeds a backlog as context in one
  forward with only the newest frame allowed to speak, so the worker never falls behind the
  camera (opendr#275: plain queues of depth 10 made outputs lag ever more). Depth 1 is a
  latest-frame-wins mailbox.
- :class:`StatsWindow` and :class:`RateMeter` compute the figures published in AssistantStats.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from proassist_ros.constants import NS_PER_S

if TYPE_CHECKING:  # for the annotation only: runtime needs no data layer at run time
    import numpy as np

    from proassist_ros.data.episode import Episode

T = TypeVar("T")


class FpsGate:
    """Keep a frame when its stamp reaches the next point of a 1/fps grid of stamps.

    All arithmetic is in integer nanoseconds, so stamps such as ``100.0 + i * 0.1`` land exactly
    on the grid and the same stamps always give the same decisions (no float drift).

    The grid is anchored at the first frame. After a kept frame, ``next_due`` advances by one
    period, or by as many periods as needed to pass that frame when stamps jumped ahead (a gap in
    the stream). A stamp older than the last kept one (a bag loop, a sim restart) re-anchors the
    grid at that frame and keeps it.
    """

    def __init__(self, fps: float) -> None:
        self._lock = threading.Lock()
        self._period_ns = self._period(fps)
        self._next_due_ns: int | None = None
        self._last_kept_ns: int | None = None

    @staticmethod
    def _period(fps: float) -> int:
        if not fps > 0.0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        return max(1, round(NS_PER_S / fps))

    @property
    def period_s(self) -> float:
        """The sampling period in seconds (1/fps)."""
        return self._period_ns / NS_PER_S

    def set_fps(self, fps: float) -> None:
        """Change the rate; the grid continues from the last kept frame with the new period."""
        period = self._period(fps)
        with self._lock:
            self._period_ns = period
            if self._last_kept_ns is not None:
                self._next_due_ns = self._last_kept_ns + period

    def reset(self) -> None:
        """Forget the grid: the next frame is kept and anchors a new one."""
        with self._lock:
            self._next_due_ns = None
            self._last_kept_ns = None

    def offer(self, stamp_ns: int) -> bool:
        """Return True when the frame stamped ``stamp_ns`` is to be processed."""
        with self._lock:
            due = self._next_due_ns
            if due is None or (self._last_kept_ns is not None and stamp_ns < self._last_kept_ns):
                self._keep(stamp_ns, stamp_ns + self._period_ns)
                return True
            if stamp_ns < due:
                return False
            periods = (stamp_ns - due) // self._period_ns + 1
            self._keep(stamp_ns, due + periods * self._period_ns)
            return True

    def _keep(self, stamp_ns: int, next_due_ns: int) -> None:
        self._last_kept_ns = stamp_ns
        self._next_due_ns = next_due_ns


def sampled_frames(episode: Episode, fps: float, t0_ns: int = 0) -> Iterator[tuple[float, np.ndarray]]:
    """The frames of a recorded episode that the node would keep: :class:`FpsGate` at ``fps`` over
    their header stamps (``t0_ns`` + stream time), a 1/fps grid anchored at the first frame.

    An episode read from a bag whose ``frames`` take a ``keep`` predicate is gated before its
    frames are decoded (a 1 FPS pass over a 10 Hz bag decodes a tenth of them).
    """
    if episode.frames is None:
        raise ValueError(f"{episode.meta.video_id}: the episode has no frames")
    gate = FpsGate(fps)

    def keep(t: float) -> bool:
        return gate.offer(t0_ns + round(t * NS_PER_S))

    if "keep" in inspect.signature(episode.frames).parameters:  # bags: gate before decoding
        yield from episode.frames(keep=keep)
        return
    for t, rgb in episode.frames():
        if keep(t):
            yield t, rgb


class FrameBacklog(Generic[T]):
    """An ordered, bounded hand-over (drop-oldest) from executor callbacks to one worker thread.

    The worker takes everything waiting at once (``get`` returns a list, oldest first). With
    depth 1 this is a latest-frame-wins mailbox. With depth N, the frames that arrive while the
    worker is busy (a long reply, an IPS summary) are kept, in order, and given to
    ``AssistantSession.push_frames``, which feeds them as context in one forward and lets only
    the newest speak (docs/engine.md, "catch-up").
    """

    def __init__(self, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError("backlog depth must be >= 1")
        self._cond = threading.Condition()
        self._items: deque[T] = deque()
        self._depth = depth
        self._closed = False

    @property
    def depth(self) -> int:
        return self._depth

    def set_depth(self, depth: int) -> list[T]:
        """Change the depth; returns the (oldest) items that no longer fit."""
        if depth < 1:
            raise ValueError("backlog depth must be >= 1")
        with self._cond:
            self._depth = depth
            return [self._items.popleft() for _ in range(max(0, len(self._items) - depth))]

    def put(self, item: T) -> T | None:
        """Append ``item``; return the oldest waiting item it pushed out (a drop), if any."""
        with self._cond:
            self._items.append(item)
            dropped = self._items.popleft() if len(self._items) > self._depth else None
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> list[T] | None:
        """Take everything waiting (oldest first); None when the timeout passed or it was closed."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout)
            if not self._items:
                return None
            items = list(self._items)
            self._items.clear()
            return items

    def clear(self) -> list[T]:
        """Discard everything waiting (returned so the caller can count it)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def close(self) -> None:
        """Wake every waiter; further ``get`` calls return at once (None when empty)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Undo :meth:`close` (a lifecycle node re-activated)."""
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n*q/100), at least 1
    return ordered[int(min(rank, len(ordered))) - 1]


class StatsWindow:
    """Processing times of the last processed frames, keyed by their stream stamps.

    ``real_time_factor`` = processing time / stream time covered by the processed frames of the
    window (the last ``window_s`` seconds of *stream* time). Below 1 the worker keeps up with the
    sampled stream; above 1 it falls behind and frames wait in (or drop out of) the backlog.
    """

    def __init__(self, window_s: float = 10.0, max_samples: int = 200) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def add(self, stamp_s: float, processing_s: float) -> None:
        """Record one processed frame."""
        with self._lock:
            if self._samples and stamp_s < self._samples[-1][0]:
                self._samples.clear()  # time went backwards (bag loop): start a new window
            self._samples.append((stamp_s, processing_s))
            while self._samples and self._samples[0][0] < stamp_s - self._window_s:
                self._samples.popleft()

    def clear(self) -> None:
        """Forget all samples."""
        with self._lock:
            self._samples.clear()

    def percentiles(self) -> tuple[float, float]:
        """(p50, p95) of the processing times in the window."""
        with self._lock:
            times = [p for _, p in self._samples]
        return percentile(times, 50), percentile(times, 95)

    def real_time_factor(self, period_s: float) -> float:
        """Processing time over stream time; ``period_s`` is the sampling period (1/fps)."""
        with self._lock:
            if not self._samples:
                return 0.0
            span = self._samples[-1][0] - self._samples[0][0] + period_s
            busy = sum(p for _, p in self._samples)
        return busy / span if span > 0 else 0.0


class RateMeter:
    """Arrival rate of events (Hz) over the last ``window_s`` seconds of a monotonic clock."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Record one event now."""
        now = self._clock()
        with self._lock:
            self._times.append(now)
            self._prune(now)

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window_s:
            self._times.popleft()

    def rate_hz(self) -> float:
        """Events per second; decays to 0 within ``window_s`` after the events stop."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            first, last = self._times[0], self._times[-1]
        # While events flow, measure between the first and last; once they stop, let the rate
        # decay with the silence instead of freezing at the last value.
        span = last - first if now - last <= 1.0 else now - first
        return (n - 1) / span if span > 0 else 0.0
