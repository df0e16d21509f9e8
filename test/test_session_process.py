"""The engine session in a process of its own (runtime/session_process.py), against in-process."""

from __future__ import annotations

import numpy as np
import pytest

from proassist_ros.runtime.session_process import RemoteSession, SessionProcessError

FACTORY = "test_session_process:tiny_session"


def tiny_session(theta: float = 1.0):
    """The factory the child runs (importable by name: test/ is on sys.path under pytest)."""
    from proassist_ros.engine import AssistantSession, EngineConfig
    from proassist_ros.model import load

    return AssistantSession(load("tiny", tokens_per_frame=1, seed=0),
                            EngineConfig(theta=theta, reply_max_tokens=6), session_id="s1")


def _frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), 0.5 * i) for i in range(n)]


@pytest.fixture(scope="module")
def remote():
    session = RemoteSession(FACTORY, theta=1.0)
    yield session
    session.close()


def test_remote_session_answers_as_the_in_process_one(remote):
    local = tiny_session(1.0)
    for sess in (local, remote):
        sess.set_task("make tea", steps=["boil water", "steep"])
        sess.push_user_utterance("what first?", 0.2)
    got_local = local.push_frames(_frames(3)) + [local.push_frame(*_frames(1, 1)[0])]
    got_remote = remote.push_frames(_frames(3)) + [remote.push_frame(*_frames(1, 1)[0])]
    keys = ("stamp_s", "spoke", "text", "seq", "kind", "blocked_by")
    assert [[getattr(r, k) for k in keys] for r in got_remote] == \
        [[getattr(r, k) for k in keys] for r in got_local]
    assert [r.p_silence for r in got_remote] == pytest.approx([r.p_silence for r in got_local])
    assert any(r.spoke for r in got_remote) and got_remote[-1].timings["decide_s"] > 0
    assert remote.session_id == local.session_id == "s1"
    assert remote.context_tokens == local.context_tokens > 0
    assert remote.task_state() == local.task_state()
    assert remote.update_config(theta=0.5).theta == 0.5 == remote.config.theta
    assert remote.reset("s2") == "s2" and remote.session_id == "s2" and remote.context_tokens == 0


def test_remote_errors_keep_their_type(remote):
    with pytest.raises(ValueError, match="feature rows"):
        remote.call("push_embedded", np.zeros((2, 1, 4), np.float32), [0.0])
    assert remote.session_id  # still serving after an error


def test_a_failing_factory_is_named():
    with pytest.raises(SessionProcessError, match="ModuleNotFoundError: No module named 'no_such_mod'"):
        RemoteSession("no_such_mod:make")


def test_close_ends_the_process():
    session = RemoteSession(FACTORY)
    pid = session.pid
    session.close()
    assert pid and not session._proc.is_alive() and session._proc.exitcode == 0
    with pytest.raises(SessionProcessError, match="died"):
        session.push_frames(_frames(1))
