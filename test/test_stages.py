"""Per-stage timings of the live path and the inference process's threading (ROS-free)."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from proassist_ros.runtime.health import StatsSnapshot, StreamCounters, assess, key_values, snapshot
from proassist_ros.runtime.stages import STAGES, StageTimes, StageWindow, from_session
from proassist_ros.runtime.threads import (
    OMP_WAIT_POLICY,
    apply_torch_threads,
    resolve_native_threads,
    resolve_threads,
)


def _result(**timings: float) -> SimpleNamespace:
    return SimpleNamespace(timings=dict(timings))


def _record(stamp: float, latency: float, **seconds: float) -> StageTimes:
    return StageTimes(stamp, tuple(seconds.get(n, 0.0) for n in STAGES), latency)


def test_record_from_engine_timings_of_a_backlog():
    """Two caught-up frames and a newest frame that spoke: every stage lands in its column."""
    results = [_result(vision_s=0.01, llm_s=0.05), _result(vision_s=0.01, llm_s=0.05, context_s=0.3),
               _result(vision_s=0.01, llm_s=1.3, decide_s=0.1, reply_s=1.2)]
    rec = from_session(12.5, queue_s=0.8, decode_s=0.02, results=results, publish_s=0.004,
                       latency_s=2.6)
    got = dict(zip(STAGES, rec.seconds, strict=True))
    assert got == pytest.approx({"queue": 0.8, "decode": 0.02, "session": 0.0, "vision": 0.03,
                                 "catchup": 0.1, "decision": 0.1, "reply": 1.2, "context": 0.3,
                                 "publish": 0.004})
    assert rec.frames == 3 and rec.slowest_stage() == "reply"
    # the node waited 2.4 s for the session (a set_task holding it, the pipe to the model
    # process) of which the engine timed 1.73 s: the rest is the "session" stage
    rec = from_session(12.5, 0.8, 0.02, results, 0.004, 3.3, session_call_s=2.4)
    assert rec.seconds[STAGES.index("session")] == pytest.approx(2.4 - 1.73)


def test_window_summary_and_what_a_frame_waited_for():
    window = StageWindow(window_s=10.0)
    window.add(_record(1.0, 0.2, decision=0.1, vision=0.05))
    window.add(_record(1.5, 2.0, decision=0.1, reply=1.8))
    window.add(_record(3.5, 2.4, queue=1.9, catchup=0.2, decision=0.1))  # waited behind the reply
    s = window.summary()
    assert s.latency_max_s == 2.4 and s.latency_p50_s == 2.0
    assert s.stage_max_s[STAGES.index("reply")] == 1.8
    assert s.slowest is not None and s.slowest.stamp_s == 3.5
    assert s.slowest.waited_for == "reply 1.80 s"
    text = s.slowest.describe()
    assert text.startswith("2.40 s: queue 1.90 s (behind the previous frame's reply 1.80 s), catchup")
    window.add(_record(30.0, 0.1, decision=0.1))  # older records leave the 10 s window
    assert window.summary().latency_max_s == 0.1
    window.add(_record(0.5, 0.3, decision=0.3))  # time went backwards: a new session
    assert window.summary().slowest.stamp_s == 0.5 and window.summary().slowest.waited_for == ""


def test_diagnostics_name_the_slowest_stage():
    window = StageWindow()
    window.add(_record(1.0, 4.0, queue=3.5, decision=0.2))
    counters = StreamCounters()
    counters.add(frames_received=10, frames_processed=3, frames_caught_up=2)
    snap = snapshot(counters, stages=window.summary(), active=True, input_rate_hz=10.0)
    level, message = assess(snap, None)
    assert level == 1 and "frames wait: slowest frame 4.00 s: queue 3.50 s" in message
    values = dict(key_values(snap))
    assert values["stage_queue_max_s"] == "3.5" and values["latency_max_s"] == "4"
    assert values["frames_caught_up"] == "2" and values["slowest_frame"].startswith("4.00 s")
    fast = snapshot(StreamCounters(), stages=StageWindow().summary(), active=True, input_rate_hz=10.0)
    assert assess(fast, None)[0] == 0 and dict(key_values(fast))["slowest_frame"] == ""
    assert isinstance(StatsSnapshot().stages.latency_max_s, float)


@pytest.mark.parametrize(("requested", "cores", "expected"), [(0, 2, 1), (0, 1, 1), (0, 16, 15),
                                                              (3, 2, 3), (1, 64, 1)])
def test_torch_threads_auto_leaves_a_core_to_ros(requested, cores, expected):
    assert resolve_threads(requested, cores) == expected


@pytest.mark.parametrize(("requested", "cores", "expected"), [(0, 2, 1), (0, 1, 1), (0, 4, 3), (0, 16, 4),
                                                              (3, 2, 3), (1, 64, 1)])
def test_native_threads_auto_leaves_a_core_to_ros_and_stops_at_four(requested, cores, expected):
    assert resolve_native_threads(requested, cores) == expected


def test_apply_torch_threads_sets_torch_and_the_native_products():
    import torch

    from proassist_ros.model import int8_kernel

    before, native = torch.get_num_threads(), int8_kernel.threads()
    try:
        assert apply_torch_threads(1) == 1 and torch.get_num_threads() == 1 and int8_kernel.threads() == 1
        apply_torch_threads(3)
        assert int8_kernel.threads() == 3
    finally:
        torch.set_num_threads(before)
        int8_kernel.set_threads(native)


@pytest.mark.parametrize(("env", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_wait_policy_is_set_before_torch_unless_the_user_set_it(env, expected):
    """In a fresh process, as the node's start-up: PASSIVE by default, the user's value wins."""
    code = ("from proassist_ros.runtime.threads import prepare_process; import os; "
            "note = prepare_process(); import torch; print(os.environ['OMP_WAIT_POLICY'], '|', note)")
    environ = {k: v for k, v in os.environ.items() if k != OMP_WAIT_POLICY}
    if env:
        environ[OMP_WAIT_POLICY] = env
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    policy, note = out.strip().split(" | ")
    assert policy == expected and (("environment" in note) == bool(env)), out


def test_engine_times_decision_and_reply_apart():
    """The newest frame's timings split its decision (the chunk's forward) from its reply."""
    import numpy as np

    from proassist_ros.engine import AssistantSession, EngineConfig
    from proassist_ros.model import load

    model = load("tiny", tokens_per_frame=1, seed=0)
    spoken = AssistantSession(model, EngineConfig(theta=1.0, reply_max_tokens=6))
    frames = [(np.zeros((32, 32, 3), np.uint8), t) for t in (0.0, 0.5, 1.0)]
    results = spoken.push_frames(frames)
    newest = results[-1].timings
    assert results[-1].spoke and newest["decide_s"] > 0 and newest["reply_s"] > 0
    assert newest["decide_s"] + newest["reply_s"] <= newest["llm_s"] + 1e-6
    assert all("decide_s" not in r.timings and r.timings["llm_s"] > 0 for r in results[:-1])
    rec = from_session(1.0, 0.0, 0.0, results, 0.0, 1.0)
    assert rec.seconds[STAGES.index("reply")] == newest["reply_s"]
    silent = AssistantSession(model, EngineConfig(theta=1e-9)).push_frames(frames[:1])[0]
    assert not silent.spoke and silent.timings["decide_s"] > 0
    assert silent.timings["reply_s"] == pytest.approx(0.0, abs=1e-3)
