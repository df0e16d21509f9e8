"""kill -9 and restart over DDS: the node resumes its session from ``state_file`` — same session
id, goal, steps and progress; guidance ``seq`` and the frame counters continue; nothing lost."""

from __future__ import annotations

import json
import signal

import pytest
import yaml
from helpers import OutputDrain
from test_assistant_node import CAMERA, NODE, Probe
from test_assistant_node import camera as camera  # noqa: F401 - fixture
from test_assistant_node import probe as probe  # noqa: F401 - fixture
from test_bringup import SHIPPED

START_S = 1_750_000_000.0


def _params(tmp_path, state_file) -> str:
    params = yaml.safe_load(SHIPPED.read_text())
    params["/**"]["ros__parameters"].update(
        model="tiny", theta=1.0, reply_max_tokens=3, image_reliability="reliable", catchup_depth=8,
        state_file=str(state_file), play_audio=False, max_age_s=0.0)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


def _send(camera, start: float, count: int) -> None:  # noqa: F811
    proc = camera([CAMERA, "--rate", "2", "--count", str(count), "--start", str(start),
                   "--width", "96", "--height", "64", "--wait", "60"])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and '"acked": true' in out, out


@pytest.mark.dds
def test_kill_9_and_restart_resumes_the_session(spawn, camera, probe: Probe, tmp_path):  # noqa: F811
    from proassist_ros.srv import SetTask

    state_file = tmp_path / "state" / "assistant.json"
    args = ["--ros-args", "--params-file", _params(tmp_path, state_file)]
    node = OutputDrain(spawn([*NODE, *args]))
    probe.wait(lambda: probe.stats, 150, "the node to come up", on_timeout=node.text)
    resp = probe.call(SetTask, "/proassist/set_task", SetTask.Request(
        goal="make tea", knowledge="1. boil water\n2. add tea bag\n3. pour", steps=[], reset_context=True))
    assert resp.success, resp.message
    _send(camera, START_S, 4)
    probe.wait(lambda: len(probe.guidance) == 4, 60, "θ = 1: four utterances", on_timeout=node.text)
    saved = json.loads(state_file.read_text())
    assert saved["seq"] == 4 and saved["session_id"] == resp.session_id
    assert saved["counters"]["frames_processed"] == 4

    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(timeout=30)
    probe.states.clear()
    restarted = OutputDrain(spawn([*NODE, *args]))
    probe.wait(lambda: restarted.has("resumed session"), 150, "the restarted node to resume",
               on_timeout=restarted.text)
    probe.wait(lambda: any(s.session_id == resp.session_id and s.goal == "make tea" for s in probe.states),
               60, "the resumed TaskState (latched)", on_timeout=restarted.text)
    state = probe.states[-1]
    assert list(state.steps) == ["boil water", "add tea bag", "pour"]

    _send(camera, START_S + 10.0, 2)
    probe.wait(lambda: len(probe.guidance) == 6, 60, "two more utterances", on_timeout=restarted.text)
    assert [g.seq for g in probe.guidance] == list(range(6))  # seq continues, no gap, no repeat
    assert {g.session_id for g in probe.guidance} == {resp.session_id}
    probe.wait(lambda: probe.stats[-1].frames_processed == 6, 30, "counters continue from 4")
