"""Several wearers on one model process (runtime/model_server.py): rounds batch the one-frame steps
of different wearers, and every wearer gets what its session alone would give."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from proassist_ros.runtime.model_server import ModelServer, Request, ServerStats, serve_round
from proassist_ros.runtime.session_process import SessionProcessError

MODEL = "test_model_server:tiny_model"
SESSION = "test_model_server:tiny_session"
TASKS = {"alice": ("make tea", ["boil water", "steep"]), "bob": ("fix the lamp", ["unplug", "swap bulb"]),
         "carol": ("water plants", ["fill can", "pour"])}
KEYS = ("stamp_s", "spoke", "text", "seq", "kind")


def tiny_model(seed: int = 0):
    """The model factory the server runs (importable by name: test/ is on sys.path under pytest)."""
    from proassist_ros.model import load

    return load("tiny", tokens_per_frame=1, seed=seed)


def tiny_session(model, theta: float, wearer: str):
    from proassist_ros.engine import AssistantSession, EngineConfig

    s = AssistantSession(model, EngineConfig(theta=theta, reply_max_tokens=5, context_limit=160, reserve=40),
                         session_id=wearer)
    goal, steps = TASKS[wearer]
    s.set_task(goal, steps=steps)
    return s


def _frames(wearer: str, n: int) -> list[tuple[np.ndarray, float]]:
    rng = np.random.default_rng(sorted(TASKS).index(wearer))
    size = 32 + 8 * sorted(TASKS).index(wearer)  # each wearer's camera has its own size
    return [(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), 0.5 * i) for i in range(n)]


def _alone(wearer: str, n: int, theta: float = 0.5) -> list:
    s = tiny_session(tiny_model(), theta, wearer)
    if wearer == "bob":
        s.push_user_utterance("what next?", 0.7)
    return [s.push_frame(*f) for f in _frames(wearer, n)]


def _view(results) -> list:
    return [[getattr(r, k) for k in KEYS] for r in results]


def test_a_round_decides_the_single_frames_of_different_wearers_together():
    model = tiny_model()
    sessions = {w: tiny_session(model, 0.5, w) for w in TASKS}
    sessions["bob"].push_user_utterance("what next?", 0.7)
    frames = {w: _frames(w, 6) for w in TASKS}
    stats, got = ServerStats(), {w: [] for w in TASKS}
    rid = 0
    for i in range(6):
        reqs = []
        for w in TASKS:
            rid += 1
            reqs.append(Request(rid, "call", w, "push_frame", frames[w][i]))
        rid += 1
        reqs.append(Request(rid, "call", "alice", "get:context_tokens"))  # not a frame: alone
        replies = serve_round(model, sessions, reqs, stats)
        assert [r[0] for r in replies] == [r.rid for r in reqs] and all(r[1] == "ok" for r in replies)
        for w, (_, _, res) in zip(TASKS, replies):
            got[w].append(res)
    assert stats.batched_rounds == 6 and stats.batched_frames == 18 == stats.frames
    assert stats.largest_batch == 3
    for w in TASKS:
        alone = _alone(w, 6)
        assert _view(got[w]) == _view(alone), w
        assert [r.p_silence for r in got[w]] == pytest.approx([r.p_silence for r in alone], abs=1e-4)
    assert any(r.spoke for w in TASKS for r in got[w])  # the test covers replies too


def test_an_error_reaches_only_its_own_caller():
    model = tiny_model()
    sessions = {w: tiny_session(model, 0.5, w) for w in ("alice", "bob")}
    good = _frames("alice", 1)[0]
    reqs = [Request(1, "call", "alice", "push_frames", ([good],)),
            Request(2, "call", "bob", "push_frames", ([(np.zeros((0, 0, 3), np.uint8), 0.0)],)),
            Request(3, "call", "nobody", "push_frame", good),
            Request(4, "open", "alice", SESSION, (0.5, "alice"))]
    stats = ServerStats()
    (r1, r2, r3, r4) = serve_round(model, sessions, reqs, stats)
    assert r1[1] == "ok" and len(r1[2]) == 1 and r1[2][0].stamp_s == 0.0
    assert r2[1] == "error" and isinstance(r2[2], Exception)
    assert r3[1] == "error" and "nobody" in str(r3[2])
    assert r4[1] == "error" and "already open" in str(r4[2])
    assert stats.batched_rounds == 0 and stats.frames == 1


@pytest.fixture
def server():
    """A server per test: the tests count its frames and sessions, so none may inherit another's
    (nor a repeat of itself, `pytest --count N`)."""
    srv = ModelServer(MODEL, SESSION)
    yield srv
    srv.close()
    assert not srv.alive()


def test_wearers_in_threads_get_what_their_session_alone_gives(server):
    sessions = {w: server.open(w, (0,), (0.5, w), model_id="tiny") for w in TASKS}
    assert len({s.pid for s in sessions.values()}) == 1
    sessions["bob"].push_user_utterance("what next?", 0.7)
    got: dict[str, list] = {}

    def run(w: str) -> None:
        got[w] = [sessions[w].push_frame(*f) for f in _frames(w, 8)]

    threads = [threading.Thread(target=run, args=(w,)) for w in TASKS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in TASKS:
        alone = _alone(w, 8)
        assert _view(got[w]) == _view(alone), w
        assert [r.p_silence for r in got[w]] == pytest.approx([r.p_silence for r in alone], abs=1e-4)
    stats = server.stats()
    assert stats.frames == 24 and stats.sessions == 3
    assert stats.batched_frames <= stats.frames
    # A wearer's node restarting: its session goes, the model and the others stay.
    sessions["carol"].close()
    assert server.stats().sessions == 2 and sessions["alice"].context_tokens > 0
    with pytest.raises(SessionProcessError, match="carol"):
        sessions["carol"].push_frame(*_frames("carol", 1)[0])
    again = server.open("carol", (0,), (0.5, "carol"), model_id="tiny")
    assert again.session_id == "carol" and again.context_tokens == 0  # a fresh session
    assert again.push_frame(*_frames("carol", 1)[0]).stamp_s == 0.0 and again.context_tokens > 0
    for s in (again, sessions["alice"], sessions["bob"]):
        s.close()


def test_a_wearer_asking_for_another_model_is_refused_by_name(server):
    first = server.open("alice", (0,), (0.5, "alice"), model_id="tiny")
    with pytest.raises(ValueError, match="'embedded'.*'tiny'"):
        server.open("bob", (0,), (0.5, "bob"), model_id="embedded")
    first.close()


def test_a_model_that_cannot_load_fails_the_open_with_its_reason():
    srv = ModelServer("test_model_server:no_such_factory", SESSION)
    with pytest.raises(SessionProcessError, match="no_such_factory"):
        srv.open("alice", (), (0.5, "alice"), model_id="x")
    assert not srv.alive()
