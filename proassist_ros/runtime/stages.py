"""Where the time of one processed backlog goes, stage by stage (ROS-free).

A user on a rig who sees the assistant lag needs to know *why*: frames waiting for the worker
(queue), image decoding, the vision tower, older backlog frames fed silently (catch-up), the
newest frame's talk decision, the reply, context management (IPS summary, drops) or publishing.
:class:`StageWindow` keeps the last seconds of stream time of these records and summarises them
for ``/proassist/stats`` and ``/diagnostics``; ``proassist replay`` names the slowest stage when a
run falls behind.

Latency is per *frame*: from its receipt by the node until its outputs are published. A backlog's
worst frame is its oldest, so a record's ``latency_s`` is the oldest frame's.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass

from proassist_ros.runtime.sampling import percentile

# Order is the order the stages run in; AssistantStats.stage_names carries it.
# "session": waiting for the session beyond the engine's own stages — a service call (set_task,
# reset) holding it, or the round trip to the model process (model_process: true).
STAGES: tuple[str, ...] = ("queue", "decode", "session", "vision", "catchup", "decision", "reply",
                           "context", "publish")


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent per stage on one processed backlog, and its oldest frame's latency."""

    stamp_s: float                      # stream time of the backlog's newest frame
    seconds: tuple[float, ...]          # one per STAGES entry
    latency_s: float                    # receipt of the oldest frame → its outputs published
    frames: int = 1                     # frames in the backlog
    waited_for: str = ""                # what the worker was busy with meanwhile: "reply 1.20 s"

    def slowest_stage(self) -> str:
        """The stage that took longest."""
        return STAGES[max(range(len(STAGES)), key=lambda i: self.seconds[i])]

    def busiest_work(self) -> str:
        """The longest stage other than waiting, as 'reply 1.20 s' (what kept the worker busy)."""
        i = max(range(1, len(STAGES)), key=lambda k: self.seconds[k])
        return f"{STAGES[i]} {self.seconds[i]:.2f} s"

    def describe(self) -> str:
        """'3.10 s: queue 1.60 s (behind the previous frame's reply 1.50 s), decision 0.10 s, …'
        (stages over 10 ms, longest first)."""
        parts = sorted(((s, n) for n, s in zip(STAGES, self.seconds, strict=True) if s >= 0.01),
                       reverse=True)
        text = [f"{n} {s:.2f} s" + (f" (behind the previous frame's {self.waited_for})"
                                    if n == "queue" and self.waited_for else "") for s, n in parts]
        return f"{self.latency_s:.2f} s: " + ", ".join(text)


def from_session(stamp_s: float, queue_s: float, decode_s: float, results: list,
                 publish_s: float, latency_s: float, session_call_s: float | None = None) -> StageTimes:
    """A record from the engine's per-frame ``FrameResult.timings`` (older frames first).

    The engine times vision per frame (``vision_s``), each silent catch-up frame (``llm_s``), the
    newest frame's decision (``decide_s``) and reply (``reply_s``), and context management
    (``context_s``) wherever it ran. ``session_call_s``: the node's wall time from asking for
    the session (its lock) to having the results; what the engine did not time of it is the
    "session" stage.
    """
    timings = [getattr(r, "timings", None) or {} for r in results]  # a session may time nothing
    newest = timings[-1]
    vision = sum(t.get("vision_s", 0.0) for t in timings)
    catchup = sum(t.get("llm_s", 0.0) for t in timings[:-1])
    context = sum(t.get("context_s", 0.0) for t in timings)
    decision = newest.get("decide_s", newest.get("llm_s", 0.0) - newest.get("context_s", 0.0))
    reply = newest.get("reply_s", 0.0)
    engine = vision + catchup + max(0.0, decision) + reply + context
    session = max(0.0, session_call_s - engine) if session_call_s is not None else 0.0
    seconds = (queue_s, decode_s, session, vision, catchup, max(0.0, decision), reply, context, publish_s)
    return StageTimes(stamp_s, tuple(float(s) for s in seconds), latency_s, len(results))


@dataclass(frozen=True)
class StageSummary:
    """The window's figures: per-stage p50 and max, latency p50 and max, the slowest record."""

    stage_p50_s: tuple[float, ...] = (0.0,) * len(STAGES)
    stage_max_s: tuple[float, ...] = (0.0,) * len(STAGES)
    latency_p50_s: float = 0.0
    latency_max_s: float = 0.0
    slowest: StageTimes | None = None


class StageWindow:
    """The records of the last ``window_s`` seconds of stream time (thread-safe)."""

    def __init__(self, window_s: float = 10.0, max_samples: int = 200) -> None:
        self._window_s = window_s
        self._records: deque[StageTimes] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def add(self, record: StageTimes) -> None:
        """Record one processed backlog."""
        with self._lock:
            if self._records and record.stamp_s < self._records[-1].stamp_s:
                self._records.clear()  # time went backwards (new session, bag loop)
            if self._records and record.seconds[0] > 0:  # it waited for the previous backlog
                record = dataclasses.replace(record, waited_for=self._records[-1].busiest_work())
            self._records.append(record)
            while self._records and self._records[0].stamp_s < record.stamp_s - self._window_s:
                self._records.popleft()

    def clear(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()

    def summary(self) -> StageSummary:
        """p50 / max per stage and of the latency, and the slowest record of the window."""
        with self._lock:
            records = list(self._records)
        if not records:
            return StageSummary()
        columns = list(zip(*(r.seconds for r in records), strict=True))
        latencies = [r.latency_s for r in records]
        return StageSummary(
            stage_p50_s=tuple(percentile(list(c), 50) for c in columns),
            stage_max_s=tuple(max(c) for c in columns),
            latency_p50_s=percentile(latencies, 50), latency_max_s=max(latencies),
            slowest=max(records, key=lambda r: r.latency_s))
