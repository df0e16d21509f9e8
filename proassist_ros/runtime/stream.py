"""The ROS-free core of the assistant node: stamp gate → mailbox → one worker → session.

The node only translates between ROS and this class: it calls :meth:`FrameStream.offer` from its
image callback (cheap: a stamp comparison and a mailbox swap) and receives every processed frame
through the ``on_output`` callback on the worker thread. Keeping the stream logic here means it
can be exercised with a fake session and fake frames, without DDS.

Thread model: ``offer``/``add_utterance``/``enabled`` are called from executor callbacks;
``_process`` runs on the worker; session calls from services go through :meth:`with_session`.
One lock serialises every use of the session and the publication of its outputs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from proassist_ros.constants import NS_PER_S
from proassist_ros.runtime.health import StatsSnapshot, StreamCounters, snapshot
from proassist_ros.runtime.sampling import (
    FpsGate,
    FrameBacklog,
    RateMeter,
    StatsWindow,
)
from proassist_ros.runtime.stages import StageWindow, from_session
from proassist_ros.runtime.worker import MailboxWorker

P = TypeVar("P")  # the frame payload (an image message in the node)
R = TypeVar("R")


@dataclass(frozen=True)
class Job(Generic[P]):
    """One kept frame waiting for the worker."""

    payload: P
    stamp_ns: int
    received: float  # time.monotonic() at receipt, for latency


@dataclass(frozen=True)
class Output(Generic[P]):
    """What the worker produced for one frame (handed to ``on_output``)."""

    job: Job[P]
    result: Any           # engine FrameResult
    state: Any            # engine TaskStateData after the frame
    session_id: str

    def latency_s(self) -> float:
        """Wall time from frame receipt until now (call it right before publishing)."""
        return time.monotonic() - self.job.received


class FrameStream(Generic[P]):
    """Sampling, hand-over and inference for one camera stream feeding one engine session."""

    def __init__(self, decode: Callable[[P], Any], decode_error: type[Exception],
                 on_output: Callable[[Output[P]], None],
                 on_decode_error: Callable[[Exception], None],
                 on_error: Callable[[BaseException], None], fps: float = 2.0) -> None:
        self._decode, self._decode_error = decode, decode_error
        self._on_output, self._on_decode_error = on_output, on_decode_error
        self._lock = threading.Lock()
        self._session: Any = None
        self._state_file: Any = None
        self._gate = FpsGate(fps)
        self._mailbox: FrameBacklog[Job[P]] = FrameBacklog(1)
        self._worker = MailboxWorker(self._mailbox, self._process, on_error)
        self._on_error = on_error
        self._utterances: list[tuple[str, float | None]] = []  # (text, stamp_s or None)
        self._utterances_lock = threading.Lock()
        self.counters = StreamCounters()
        self._window, self._rate, self._stages = StatsWindow(), RateMeter(), StageWindow()
        self.enabled = True
        self._context_tokens = 0

    # -- session ------------------------------------------------------------------------------
    def attach(self, session: Any, fps: float, catchup_depth: int = 1, state_file: Any = None) -> None:
        """Use ``session`` from now on, sampling at ``fps`` on a fresh stamp grid.

        ``catchup_depth``: kept frames that may wait while the worker is busy (1 = latest wins).
        ``state_file`` (runtime/state_file.py): written after every processed backlog and service
        call, so a restarted node resumes the session.
        """
        with self._lock:
            self._session, self._state_file = session, state_file
            self._gate = FpsGate(fps)
            self.counters.add(frames_dropped=len(self._mailbox.set_depth(catchup_depth)))

    def detach(self) -> None:
        """Stop the worker and forget the session; a session in its own process is closed."""
        self.stop()
        with self._lock:
            session, self._session, self._state_file = self._session, None, None
        close = getattr(session, "close", None)
        if close is not None:
            close()

    def with_session(self, fn: Callable[[Any], R]) -> R:
        """Run ``fn(session)`` under the session lock (services: set_task, reset, policies)."""
        with self._lock:
            if self._session is None:
                raise RuntimeError("no session: the node is not configured")
            try:
                return fn(self._session)
            finally:
                self._save(self._session)

    def _save(self, session: Any) -> None:
        """Write the session's state (and the counters) when a state file is kept."""
        if self._state_file is not None:
            try:
                self._state_file.write({**session.snapshot(), "counters": self.counters.values()})
            except OSError as exc:  # disk full, removed directory: reported, the stream goes on
                self._on_error(RuntimeError(f"cannot write state_file {self._state_file.path}: {exc}"))

    def set_fps(self, fps: float) -> None:
        """Change the sampling rate (the grid continues from the last kept frame)."""
        self._gate.set_fps(fps)

    def reset_grid(self) -> None:
        """Start a new stamp grid at the next frame (after a session reset)."""
        self._gate.reset()

    # -- worker -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the inference thread."""
        self._worker.start()

    def stop(self) -> bool:
        """Stop the inference thread; a frame still waiting is dropped and counted."""
        stopped = self._worker.stop()
        self.discard_pending()
        return stopped

    def discard_pending(self) -> None:
        """Drop the frames waiting for the worker, if any (counted as dropped)."""
        self.counters.add(frames_dropped=len(self._mailbox.clear()))

    # -- inputs (executor callbacks) ----------------------------------------------------------
    def offer(self, payload: P, stamp_ns: int) -> bool:
        """A frame arrived; keep it for the worker when enabled and due. True when kept."""
        self._rate.tick()
        kept = self.enabled and self._gate.offer(stamp_ns)
        replaced = self._mailbox.put(Job(payload, stamp_ns, time.monotonic())) if kept else None
        self.counters.add(frames_received=1, frames_dropped=int(not kept or replaced is not None),
                          overwritten=int(replaced is not None))
        return kept

    def add_utterance(self, text: str, stamp_s: float | None = None) -> None:
        """A user utterance. Without a stamp (typed text) it enters right before the next
        processed frame; with one (ASR: when the wearer started speaking) it waits for the first
        processed frame stamped at or after it, so it sits where it was said."""
        with self._utterances_lock:
            self._utterances.append((text, stamp_s))

    def _due_utterances(self, newest_s: float) -> list[tuple[str, float]]:
        """The utterances that enter with a backlog ending at ``newest_s``, with their stamps."""
        with self._utterances_lock:
            due = [(t, newest_s if s is None else s) for t, s in self._utterances
                   if s is None or s <= newest_s]
            self._utterances = [(t, s) for t, s in self._utterances if s is not None and s > newest_s]
        return due

    def _process(self, jobs: list[Job[P]]) -> None:
        """Decode the waiting frames and give them to the session as one backlog (oldest first).

        Every stage is timed (runtime/stages.py): how long the oldest frame waited, decoding,
        the engine's vision / catch-up / decision / reply / context, and publishing.
        """
        start = time.monotonic()
        queue_s = start - jobs[0].received if jobs else 0.0
        good: list[tuple[Job[P], Any]] = []
        for job in jobs:
            try:
                good.append((job, self._decode(job.payload)))
            except self._decode_error as exc:
                self.counters.add(decode_errors=1)
                self._on_decode_error(exc)
        if not good:
            return
        decode_s = time.monotonic() - start
        newest_s = good[-1][0].stamp_ns / NS_PER_S
        asked = time.monotonic()  # the "session" stage: waiting for it beyond the engine's stages
        with self._lock:
            session = self._session
            if session is None:
                return
            for text, stamp_s in self._due_utterances(newest_s):
                session.push_user_utterance(text, stamp_s)
            results = session.push_frames([(rgb, job.stamp_ns / NS_PER_S) for job, rgb in good])
            self._context_tokens = int(session.context_tokens)
            self._window.add(newest_s, time.monotonic() - start)
            self.counters.add(frames_processed=len(good), frames_caught_up=len(good) - 1,
                              summaries_triggered=sum(bool(r.context_event) for r in results))
            # Still under the lock: outputs of a frame and of a service (set_task, reset) are
            # published in the order the session saw them, so a stale TaskState never wins.
            state, session_id = session.task_state(), session.session_id  # once per backlog: a
            self._save(session)  # session in its own process answers each over a pipe
            published = time.monotonic()
            for (job, _), result in zip(good, results, strict=True):
                self._on_output(Output(job, result, state, session_id))
            done = time.monotonic()
            self._stages.add(from_session(newest_s, queue_s, decode_s, results, done - published,
                                          done - good[0][0].received, session_call_s=published - asked))

    # -- stats --------------------------------------------------------------------------------
    def snapshot(self, active: bool, seconds_since_qos_event: float) -> StatsSnapshot:
        """All figures for AssistantStats and /diagnostics."""
        p50, p95 = self._window.percentiles()
        return snapshot(
            self.counters, stages=self._stages.summary(), inference_p50_s=p50, inference_p95_s=p95,
            real_time_factor=self._window.real_time_factor(self._gate.period_s),
            input_rate_hz=self._rate.rate_hz(), context_tokens=self._context_tokens,
            active=active, enabled=self.enabled, seconds_since_qos_event=seconds_since_qos_event)
