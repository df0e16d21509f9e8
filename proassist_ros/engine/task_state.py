"""Task state: goal, steps, current/completed steps, progress, last summary — for TaskState.msg.

The paper has no explicit task state; a robot assistant needs one. Steps come from set_task or
from a numbered recipe. Each utterance and progress summary is matched to the steps with a
sentence embedder: the best step above the threshold becomes current, and every step before it
counts as completed (tasks are followed in order; the index never moves backwards).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import EngineConfig

STATUS_IDLE, STATUS_ACTIVE, STATUS_PAUSED, STATUS_COMPLETED, STATUS_ABORTED = range(5)
PROGRESS_UNKNOWN = -1.0


@dataclass
class TaskStateData:
    """Maps 1:1 onto proassist_ros/msg/TaskState (header filled by the node)."""

    session_id: str = ""
    goal: str = ""
    status: int = STATUS_IDLE
    steps: list[str] = field(default_factory=list)
    current_step_index: int = -1
    completed_steps: list[int] = field(default_factory=list)
    progress: float = PROGRESS_UNKNOWN
    progress_summary: str = ""
    summary_stamp_s: float = 0.0
    last_guidance_seq: int = 0
    elapsed_s: float = 0.0


class TaskTracker:
    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.state = TaskStateData()
        self._step_vecs = None
        self._start_stamp: float | None = None

    def set_task(self, session_id: str, goal: str, steps: list[str]) -> None:
        self.state = TaskStateData(session_id=session_id, goal=goal, steps=list(steps),
                                   status=STATUS_ACTIVE if (goal or steps) else STATUS_IDLE,
                                   progress=0.0 if steps else PROGRESS_UNKNOWN)
        self._step_vecs = None
        self._start_stamp = None

    def on_frame(self, stamp_s: float) -> None:
        if self._start_stamp is None:
            self._start_stamp = stamp_s
        self.state.elapsed_s = max(0.0, stamp_s - self._start_stamp)

    def on_summary(self, text: str, stamp_s: float) -> None:
        self.state.progress_summary = text
        self.state.summary_stamp_s = stamp_s
        self.match(text)

    def match(self, text: str) -> int:
        """Match text to a step; returns the step index or -1. Updates current/completed/progress."""
        steps = self.state.steps
        if not steps or not text.strip() or self.cfg.step_matcher == "none":
            return -1
        from .embedder import shared_embedder

        emb = shared_embedder()
        if self._step_vecs is None:
            self._step_vecs = emb.encode(steps)
        sims = (self._step_vecs @ emb.encode([text])[0]).tolist()
        best = max(range(len(steps)), key=lambda i: sims[i])
        if sims[best] < self.cfg.step_match_threshold:
            return -1
        if best > self.state.current_step_index:
            self.state.current_step_index = best
            self.state.completed_steps = list(range(best))
            self.state.progress = len(self.state.completed_steps) / len(steps)
        return best
