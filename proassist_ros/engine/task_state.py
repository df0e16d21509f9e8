"""Task state: goal, steps, current/completed steps, progress, last summary — for TaskState.msg.

The paper has no explicit task state; a robot assistant needs one. Steps come from set_task or
from a numbered recipe. Each utterance and progress summary is matched to the steps with a
sentence embedder: the best step above the threshold becomes current, and every step before it
counts as completed (tasks are followed in order; the index never moves backwards).

A robot (or a UI) may also *mark* a step done or undone (the MarkStep service): an external fact
that wins over the model's matching for that step. The task is completed when every step is
done, or when the wearer says so ("I'm done"); never on a timer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config import EngineConfig

STATUS_IDLE, STATUS_ACTIVE, STATUS_PAUSED, STATUS_COMPLETED, STATUS_ABORTED = range(5)
PROGRESS_UNKNOWN = -1.0
# The wearer saying the whole task is finished ("I'm done", "all done", "finished!"); not "done
# with the first step" nor a question ("am I done?").
_DONE = re.compile(r"^\W*(?:ok(?:ay)?\W+|so\W+|right\W+)?(?:i'?m|i am|we'?re|we are|i'?ve|i have|"
                   r"all|that'?s it,?|and)?\W*(?:all\W+)?(?:done|finished|complete(?:d)?)"
                   r"(?:\W+(?:now|here|with (?:it|everything|the task|that)))?\W*$", re.I)


def says_done(text: str) -> bool:
    """Whether a user turn says the task is finished."""
    return bool(_DONE.match(text.strip())) and not text.strip().endswith("?")


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
        self.marks: dict[int, bool] = {}  # step -> done, as marked from outside (mark_step)

    def set_task(self, session_id: str, goal: str, steps: list[str]) -> None:
        self.state = TaskStateData(session_id=session_id, goal=goal, steps=list(steps),
                                   status=STATUS_ACTIVE if (goal or steps) else STATUS_IDLE,
                                   progress=0.0 if steps else PROGRESS_UNKNOWN)
        self._step_vecs = None
        self._start_stamp = None
        self.marks = {}

    def mark(self, index: int, done: bool) -> None:
        """A step marked done (or undone) from outside; ValueError for a step that does not exist."""
        n = len(self.state.steps)
        if not 0 <= index < n:
            raise ValueError(f"step_index {index} is not a step of this task ({n} steps"
                             + (f": 0..{n - 1})" if n else ")"))
        self.marks[index] = done
        s = self.state
        if done and index >= s.current_step_index:
            s.current_step_index = min(index + 1, n - 1)
        elif not done and index < s.current_step_index:
            s.current_step_index = index
        self._update(set(s.completed_steps) | {index} if done else set(s.completed_steps) - {index})

    def end(self, status: int) -> None:
        """End the task from outside (a cancelled goal): it stays visible with this status."""
        if self.state.status in (STATUS_ACTIVE, STATUS_PAUSED):
            self.state.status = status

    def on_user(self, text: str) -> None:
        """A user turn entered the stream: "I'm done" completes the task."""
        if self.state.status == STATUS_ACTIVE and says_done(text):
            self.state.status = STATUS_COMPLETED
            if self.state.steps:
                self.state.current_step_index = len(self.state.steps) - 1
                self._update(set(range(len(self.state.steps))))

    def _update(self, completed: set[int]) -> None:
        """Completed steps (marks win), progress, and completion when every step is done."""
        s = self.state
        completed |= {i for i, d in self.marks.items() if d}
        completed -= {i for i, d in self.marks.items() if not d}
        s.completed_steps = sorted(completed)
        if s.steps:
            s.progress = len(s.completed_steps) / len(s.steps)
            if len(s.completed_steps) == len(s.steps) and s.status == STATUS_ACTIVE:
                s.status = STATUS_COMPLETED
            elif len(s.completed_steps) < len(s.steps) and s.status == STATUS_COMPLETED:
                s.status = STATUS_ACTIVE  # a step marked undone after all

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
            self._update(set(self.state.completed_steps) | set(range(best)))
        return best
