"""What to say next: priority order, interrupt pre-emption, stale-guidance dropping, a bound.

Guidance is time-critical: "now turn off the stove" said 30 s late is worse than silence. So an
item older than ``max_age_s`` (header stamp vs. the clock the node runs on, sim time included)
is dropped and counted instead of spoken; an ``interrupt`` item jumps ahead of everything and
cancels the utterance in progress; a full queue sheds its least important item (the oldest
among equals: newer guidance is the more relevant).

Barge-in: when the wearer starts talking, ``barge_in(onset_s)`` cancels the utterance in progress,
drops queued guidance decided before the onset (it answered a situation the wearer's question has
changed) and holds ``pop`` until ``release()`` (the wearer stopped) or a safety deadline, so the
assistant never talks over the wearer.

The queue also owns "the item being spoken" (``pop`` hands it out with a cancel Event, ``done``
retires it), so that deciding to pre-empt and cancelling happen under one lock: an interrupt can
never slip between "worker took an item" and "worker registered it as current".
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from proassist_ros.constants import PRIORITY_NORMAL  # Guidance.PRIORITY_*: plain ints, no ROS

DROP_STALE = "stale"
DROP_OVERFLOW = "overflow"
DROP_BARGE_IN = "barge_in"


@dataclass(frozen=True)
class SpeechItem:
    """One utterance request (from a Guidance message or any other source)."""

    text: str
    priority: int = PRIORITY_NORMAL
    interrupt: bool = False
    stamp_s: float | None = None  # when it was decided (header stamp, s); None: use receipt
    session_id: str = ""
    seq: int = 0
    received_s: float = 0.0  # clock() at push (set by the queue)
    order: int = 0  # arrival counter (set by the queue)


@dataclass(frozen=True)
class Active:
    """The item being spoken and the Event that cancels it."""

    item: SpeechItem
    cancel: threading.Event = field(default_factory=threading.Event)
    barge_in_s: list[float] = field(default_factory=list)  # onset stamp(s) that cut it off


@dataclass(frozen=True)
class QueueStats:
    received: int
    dropped_stale: int
    dropped_overflow: int
    preempted: int  # utterances cancelled by an interrupt
    queued: int


class SpeechQueue:
    """Thread-safe bounded priority queue of SpeechItems with pre-emption and max age.

    ``on_drop(item, reason)`` is called (outside the lock) for every dropped item.
    """

    def __init__(self, maxsize: int = 8, max_age_s: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 on_drop: Callable[[SpeechItem, str], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.max_age_s = max_age_s
        self._clock = clock
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._items: list[SpeechItem] = []
        self._active: Active | None = None
        self._closed = False
        self._hold_until: float | None = None  # time.monotonic() deadline; None: not held
        self._last_onset = -float("inf")  # the wearer's latest speech onset (clock time)
        self._order = itertools.count()
        self._received = self._stale = self._overflow = self._preempted = 0

    @staticmethod
    def _rank(item: SpeechItem) -> tuple[int, int, int]:
        """Smaller is spoken first: interrupts, then higher priority, then arrival order."""
        return (0 if item.interrupt else 1, -item.priority, item.order)

    @staticmethod
    def _shed_rank(item: SpeechItem) -> tuple[int, int, int]:
        """Largest is shed first when full: lowest priority, and among equals the oldest."""
        return (0 if item.interrupt else 1, -item.priority, -item.order)

    def _is_stale(self, item: SpeechItem, now: float) -> bool:
        if self.max_age_s <= 0:
            return False
        born = item.stamp_s if item.stamp_s is not None else item.received_s
        return now - born > self.max_age_s

    def _purge_stale(self, now: float, dropped: list[tuple[SpeechItem, str]]) -> None:
        keep = [i for i in self._items if not self._is_stale(i, now)]
        for item in self._items:
            if self._is_stale(item, now):
                self._stale += 1
                dropped.append((item, DROP_STALE))
        self._items = keep

    def _report(self, dropped: list[tuple[SpeechItem, str]]) -> None:
        if self._on_drop is not None:
            for item, reason in dropped:
                self._on_drop(item, reason)

    def push(self, item: SpeechItem) -> bool:
        """Queue ``item``; True if queued. An interrupt item also cancels the active utterance."""
        dropped: list[tuple[SpeechItem, str]] = []
        with self._cond:
            now = self._clock()
            item = dataclasses.replace(item, received_s=now, order=next(self._order))
            self._received += 1
            self._purge_stale(now, dropped)
            accepted = not self._closed
            born = item.stamp_s if item.stamp_s is not None else now
            if accepted and born < self._last_onset:
                # decided before the wearer's latest question, arriving after it (another topic,
                # another DDS writer: no order between them): as stale as the ones barge_in dropped
                dropped.append((item, DROP_BARGE_IN))
                accepted = False
            elif accepted and self._is_stale(item, now):
                self._stale += 1
                dropped.append((item, DROP_STALE))
                accepted = False
            elif accepted and len(self._items) >= self.maxsize:
                worst = max([*self._items, item], key=self._shed_rank)
                self._overflow += 1
                dropped.append((worst, DROP_OVERFLOW))
                accepted = worst is not item
                if accepted:
                    self._items.remove(worst)
            if accepted:
                self._items.append(item)
                if item.interrupt and self._active is not None:
                    self._active.cancel.set()
                    self._preempted += 1
                self._cond.notify()
        self._report(dropped)
        return accepted

    def barge_in(self, onset_s: float, hold_s: float) -> SpeechItem | None:
        """The wearer started talking at ``onset_s`` (the node's clock): cancel the active
        utterance (returned), drop queued items decided before ``onset_s`` and hold ``pop``
        until ``release()`` or for ``hold_s`` at most (a lost "stopped talking")."""
        dropped: list[tuple[SpeechItem, str]] = []
        with self._cond:
            self._last_onset = max(self._last_onset, onset_s)
            keep = []
            for item in self._items:
                born = item.stamp_s if item.stamp_s is not None else item.received_s
                if born < onset_s:
                    dropped.append((item, DROP_BARGE_IN))
                else:
                    keep.append(item)
            self._items = keep
            self._hold_until = time.monotonic() + max(0.0, hold_s)
            cut = None
            if self._active is not None and not self._active.cancel.is_set():
                self._active.barge_in_s.append(onset_s)
                self._active.cancel.set()
                cut = self._active.item
        self._report(dropped)
        return cut

    def release(self) -> None:
        """The wearer stopped talking: held items may be spoken again."""
        with self._cond:
            self._hold_until = None
            self._cond.notify_all()

    @property
    def held(self) -> bool:
        with self._cond:
            return self._held_for() > 0

    def _held_for(self) -> float:
        if self._hold_until is None:
            return 0.0
        left = self._hold_until - time.monotonic()
        if left <= 0:
            self._hold_until = None
            return 0.0
        return left

    def pop(self, timeout: float | None = None) -> Active | None:
        """Wait for the next item, make it the active one; None on timeout or after close().

        Stale items met on the way are dropped; nothing is handed out while held (barge-in).
        Call ``done()`` when the utterance ends.
        """
        dropped: list[tuple[SpeechItem, str]] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                while True:
                    self._purge_stale(self._clock(), dropped)
                    if self._closed:
                        return None
                    held = self._held_for()
                    if self._items and not held:
                        item = min(self._items, key=self._rank)
                        self._items.remove(item)
                        self._active = Active(item)
                        return self._active
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    if held:  # wake at the hold's deadline even if nobody releases it
                        remaining = held if remaining is None else min(remaining, held)
                    self._cond.wait(remaining)
        finally:
            self._report(dropped)

    def done(self) -> None:
        """The active utterance has ended (spoken, cancelled or failed)."""
        with self._cond:
            self._active = None

    @property
    def active(self) -> SpeechItem | None:
        with self._cond:
            return self._active.item if self._active else None

    def cancel_active(self) -> bool:
        """Cancel the utterance in progress (e.g. a stop request); True if there was one."""
        with self._cond:
            if self._active is None:
                return False
            self._active.cancel.set()
            return True

    def close(self) -> None:
        """Wake every waiter; pop() returns None from now on."""
        with self._cond:
            self._closed = True
            if self._active is not None:
                self._active.cancel.set()
            self._cond.notify_all()

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(self._received, self._stale, self._overflow, self._preempted,
                              len(self._items))

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
