"""Crash and resume (engine/resume.py, runtime/state_file.py): a session continues from its saved
state with its task, progress summary, step and guidance seq, its context restarted as after IPS."""

from __future__ import annotations

import json

import pytest
from test_engine import GOAL, RECIPE, cfg, frames
from test_engine import model as model  # noqa: F401 - the fixture

from proassist_ros.engine import AssistantSession
from proassist_ros.engine.context import system_content
from proassist_ros.engine.resume import FORMAT, carried_summary
from proassist_ros.engine.task_state import TaskStateData
from proassist_ros.runtime.state_file import StateFile


def _run_until_summary_and_speech(s: AssistantSession) -> float:
    spoke = summary = False
    t = 0.0
    for i, f in enumerate(frames(120)):
        t = 0.5 * i
        r = s.push_frame(f, t)
        spoke |= r.spoke
        summary |= r.context_event == "ips" and bool(r.summary)
        if spoke and summary:
            return t
    pytest.fail(f"the stream should speak ({spoke}) and summarise ({summary})")


def test_a_resumed_session_continues_task_summary_step_and_seq(model):  # noqa: F811
    a = AssistantSession(model, cfg(context_strategy="ips", summary_theta=0.9))
    a.set_task(GOAL, RECIPE, steps=["boil water", "steep the tea"])
    a.push_user_utterance("what first?", 0.2)
    t = _run_until_summary_and_speech(a)
    a._tracker.state.current_step_index, a._tracker.state.completed_steps = 1, [0]  # a step was matched
    snap = json.loads(json.dumps(a.snapshot()))  # what the state file holds
    assert snap["format"] == FORMAT and snap["seq"] > 0

    b = AssistantSession(model, cfg(context_strategy="ips", summary_theta=0.9, theta=1.0))
    assert b.resume(snap) == a.session_id == b.session_id
    assert b.task_state() == a.task_state() and b.task_state().progress_summary
    assert b.summaries_triggered == a.summaries_triggered
    r = b.push_frame(frames(1, 7)[0], t + 0.5)
    # θ = 1: it speaks, and its seq continues where the crashed session stopped
    assert r.spoke and r.seq == snap["seq"]
    chat, state = model.chat, a.task_state()
    content = system_content(b.config, state.progress_summary, f"Task knowledge: {RECIPE}")
    assert b.last_input_ids == chat.bos_ids() + chat.message_ids("system", content) + chat.image_ids(1)


def test_before_any_summary_the_restart_carries_one_written_from_the_task_state():
    state = TaskStateData(goal="make tea.", steps=["Boil water.", "Steep the tea."], completed_steps=[0])
    assert carried_summary(state) == "The user wants to make tea. So far they have done: Boil water."
    state.progress_summary = "The model's own."
    assert carried_summary(state) == "The model's own."
    assert carried_summary(TaskStateData()) == ""


def test_a_snapshot_of_another_format_or_incomplete_is_refused(model):  # noqa: F811
    s = AssistantSession(model, cfg())
    with pytest.raises(ValueError, match="format"):
        s.resume({"format": "other/9"})
    with pytest.raises(ValueError, match="incomplete"):
        s.resume({"format": FORMAT, "session_id": "x"})


def test_the_state_file_is_replaced_whole_and_a_damaged_one_is_kept_aside(tmp_path):
    path = tmp_path / "deep" / "state.json"
    sf = StateFile(path)
    assert sf.read() is None
    assert sf.write({"a": 1}) and not sf.write({"a": 1}) and sf.write({"a": 2})
    assert StateFile(path).read() == {"a": 2} and sf.writes == 2
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left behind
    path.write_text('{"a": 2, "trunc')
    with pytest.raises(ValueError, match="damaged.*moved to .*state.json.corrupt"):
        StateFile(path).read()
    assert not path.exists() and (path.parent / "state.json.corrupt").is_file()
    with pytest.raises(ValueError, match="is a directory"):
        StateFile(tmp_path)
