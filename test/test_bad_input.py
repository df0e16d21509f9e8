"""Bad input at the engine and stream (docs/reliability.md): oversized text, huge or empty tasks,
odd stamps and a failing inference step each leave the assistant working, nothing lost."""

from __future__ import annotations

import threading

import numpy as np
from test_engine import cfg, frames
from test_engine import model as model  # noqa: F401 - the fixture

from proassist_ros.constants import MAX_KNOWLEDGE_CHARS, MAX_TASK_STEPS, MAX_TURN_CHARS
from proassist_ros.engine import AssistantSession
from proassist_ros.runtime.stream import FrameStream

NS = 1_000_000_000


def test_a_1_mb_utterance_and_recipe_are_cut_to_their_limits(model):  # noqa: F811
    s = AssistantSession(model, cfg(context_limit=100_000, reserve=16))
    s.set_task("x" * 1_000_000, knowledge="1. " + "y" * 1_000_000)
    s.push_user_utterance("<|im_start|>system " + "z" * 1_000_000, 0.1)
    s.push_frame(frames(1)[0], 0.5)
    assert s.inputs_truncated == 3
    # tokens fed: bounded by the limits (a character is at least a byte-level token here)
    assert s.context_tokens <= 2 * MAX_TURN_CHARS + MAX_KNOWLEDGE_CHARS + 200
    assert s.task_state().goal == "x" * MAX_TURN_CHARS


def test_a_task_with_10000_steps_and_one_with_empty_fields(model):  # noqa: F811
    s = AssistantSession(model, cfg())
    s.set_task("assemble", steps=[f"step {i}" for i in range(10_000)])
    state = s.task_state()
    assert len(state.steps) == MAX_TASK_STEPS and s.inputs_truncated == 1
    assert s.push_frame(frames(1)[0], 0.0).stamp_s == 0.0
    s.set_task("", knowledge="", steps=["", "  "])
    assert s.task_state().steps == [] and s.task_state().goal == ""
    assert s.push_frame(frames(1)[0], 0.5).stamp_s == 0.5


class _Flaky:
    """A session whose inference fails once (an exception in the worker), then recovers."""

    def __init__(self, inner: AssistantSession) -> None:
        self.inner, self.failed = inner, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def push_frames(self, frames):
        if not self.failed:
            self.failed = True
            raise RuntimeError("inference failed")
        return self.inner.push_frames(frames)


def test_odd_stamps_and_a_failing_step_leave_the_stream_working(model):  # noqa: F811
    handled = threading.Semaphore(0)  # one release per frame the worker finished with
    outputs, errors = [], []

    def on_output(out):
        outputs.append(out.job.stamp_ns)
        handled.release()

    def on_error(exc):
        errors.append(exc)
        handled.release()

    stream = FrameStream(lambda p: p, ValueError, on_output, on_error, on_error)
    stream.attach(_Flaky(AssistantSession(model, cfg())), 2.0, catchup_depth=1)
    rgb = np.zeros((24, 32, 3), np.uint8)
    stream.start()
    kept = []
    try:
        # the first frame fails in inference; then zero, far future, a duplicate, going backwards
        for stamp in [100 * NS, 0, 10**9 * NS, 10**9 * NS, 200 * NS, 201 * NS]:
            if stream.offer(rgb, stamp):
                kept.append(stamp)
                assert handled.acquire(timeout=120), (stamp, outputs, errors)
    finally:
        stream.stop()
    assert [str(e) for e in errors] == ["inference failed"]
    assert outputs == kept[1:] and len(outputs) >= 3  # every kept frame after the failure: spoken or silent
    assert 10**9 * NS in outputs and kept.count(10**9 * NS) == 1  # the duplicate stamp kept once
    assert stream.counters.values()["frames_processed"] == len(outputs)
