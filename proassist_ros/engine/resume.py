"""A session's durable state, and resuming from it after a crash (kill -9, power loss).

What survives: the session id, the task (goal, recipe, steps), the task state (current and
completed steps, steps marked from outside, progress summary, clock), the guidance ``seq`` and the
summary count. What does
not: the KV cache (frames and turns since the last summary) — the resumed session restarts its
context exactly as IPS does after a summary (spec §3.1 step 4: BOS + one system message with the
prompt, the progress summary and the recipe), so to the model a crash looks like one more IPS
event. Before the first summary there is none to carry, so the restart writes one from the task
state in the training summaries' words ("The user wants to …. So far they have …").

The dict is plain JSON (``FORMAT`` names its version); ``runtime/state_file.py`` writes it
atomically.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import context as ctx
from .task_state import TaskStateData

FORMAT = "proassist-session-state/1"


def snapshot(session: Any) -> dict[str, Any]:
    """Everything ``resume`` needs, as JSON-ready values."""
    tracker = session._tracker
    return {
        "format": FORMAT,
        "session_id": session.session_id,
        "seq": session._seq,
        "summaries_triggered": session.summaries_triggered,
        "knowledge": session._knowledge,
        "recipe_waiting": session._recipe_waiting,
        "goal_fed": session._goal_fed,
        "user_seen": session._user_seen,
        "task_state": dataclasses.asdict(tracker.state),
        "task_start_stamp": tracker._start_stamp,
        "task_marks": {str(i): done for i, done in tracker.marks.items()},
    }


def carried_summary(state: TaskStateData) -> str:
    """The progress summary the resumed context starts from: the model's own, else one written
    from the task state."""
    if state.progress_summary:
        return state.progress_summary
    if not state.goal:
        return ""
    text = f"The user wants to {state.goal.rstrip('.').strip()}."
    done = [state.steps[i].rstrip(".").strip() for i in state.completed_steps if 0 <= i < len(state.steps)]
    if done:
        text += " So far they have done: " + "; ".join(done) + "."
    return text


def resume(session: Any, snap: dict[str, Any]) -> str:
    """Make ``session`` continue the one ``snap`` was taken of; returns its session id.

    ValueError when ``snap`` is not a snapshot of this format (the caller keeps the file)."""
    if not isinstance(snap, dict) or snap.get("format") != FORMAT:
        raise ValueError(f"not a session state of format {FORMAT!r} "
                         f"(found {snap.get('format') if isinstance(snap, dict) else type(snap).__name__!r})")
    try:
        state = TaskStateData(**snap["task_state"])
        with session._lock:
            session.reset(str(snap["session_id"]))
            session._seq = int(snap["seq"])
            session.summaries_triggered = int(snap["summaries_triggered"])
            session._knowledge = str(snap["knowledge"])
            session._recipe_waiting = str(snap["recipe_waiting"])
            session._goal_fed = str(snap["goal_fed"])
            session._user_seen = bool(snap["user_seen"])
            state.steps, state.completed_steps = list(state.steps), list(state.completed_steps)
            session._tracker.state = state
            start = snap["task_start_stamp"]
            session._tracker._start_stamp = None if start is None else float(start)
            session._tracker.marks = {int(i): bool(d) for i, d in snap.get("task_marks", {}).items()}
            chat, cfg = session.model.chat, session.config
            content = ctx.system_content(cfg, carried_summary(state), session._knowledge)
            session._pending = chat.bos_ids() + chat.message_ids("system", content)
            session._started = True  # the prefix above replaces BOS + system prompt
    except (KeyError, TypeError) as exc:
        raise ValueError(f"incomplete session state: {type(exc).__name__}: {exc}") from None
    return session.session_id
