"""IPS in the background (engine/summary_job.py) on a tiny real model: the summary is written on a
fork while frames go on, and the context it hands over holds the tokens synchronous IPS gives.

The summary thread is held at a gate (a threading.Event the test opens) so that "frames go on
while the summary is written" is a fact of the test, not of timing."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from proassist_ros.engine import AssistantSession, EngineConfig, summary_job
from proassist_ros.model import load
from proassist_ros.model.streaming import FeedLog

RECIPE = "1. Boil the water\n2. Put a tea bag in the cup\n3. Pour the water into the cup"
GOAL = "I want to make a cup of tea"


@pytest.fixture(scope="module")
def model():
    """P(silence) varies from frame to frame but stays far above θ = 1e-12: nothing speaks, so
    the decisions of two sessions can be compared frame by frame."""
    m = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=0)
    with torch.no_grad():
        row = m.llm.lm_head.weight[m.chat.silence_id]
        row.copy_(torch.randn(row.shape, generator=torch.Generator().manual_seed(1)))
    return m


def cfg(**kw) -> EngineConfig:
    # summary_theta 1.0: a summary is always written (P(silence) ≤ 1), 12 tokens at most
    base = dict(theta=1e-12, step_matcher="none", reply_max_tokens=6, summary_theta=1.0,
                summary_max_tokens=12, context_limit=96, reserve=16)
    base.update(kw)
    return EngineConfig(**base)


def frames(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def gate(monkeypatch):
    """Hold the background summary until the test opens the gate."""
    opened = threading.Event()
    original = summary_job.ctx.iterative_progress_summarization

    def held(*args, **kw):
        assert opened.wait(60), "the test never opened the gate"
        return original(*args, **kw)

    # the job's view of engine/context.py only: a synchronous session beside it is not held
    monkeypatch.setattr(summary_job, "ctx", SimpleNamespace(iterative_progress_summarization=held))
    yield opened
    opened.set()


def _kv(session: AssistantSession) -> list[torch.Tensor]:
    return [t for layer in session._state.cache.layers for t in (layer.keys, layer.values)]


def test_summary_is_written_while_frames_go_on_and_hands_over_the_synchronous_context(model, gate):
    imgs = frames(60)
    sync = AssistantSession(model, cfg())
    bg = AssistantSession(model, cfg(ips_background=True))
    for s in (sync, bg):
        s.set_task(GOAL, RECIPE)
    during = 4
    trigger = handed = None
    for i, f in enumerate(imgs):
        rs, rb = sync.push_frame(f, 0.5 * i), bg.push_frame(f, 0.5 * i)
        if trigger is None:
            # the same frames, the same cache, the same decisions up to the trigger
            assert rb.p_silence == pytest.approx(rs.p_silence, rel=1e-4)
            if rs.context_event:
                assert rs.context_event == "ips" and rs.summary, "the sync summary must not be empty"
                assert not rb.context_event and bg._ips_job is not None, "the background job starts here"
                trigger, summary = i, rs.summary
            continue
        if i <= trigger + during:
            # the summary is held: the background session keeps deciding on its old cache
            assert not rb.context_event and not rb.spoke
            assert bg.context_tokens > bg.config.trigger_tokens
            if i == trigger + during:
                gate.set()
                bg.wait_summary()
            continue
        if handed is None:
            assert rb.context_event == "ips", "the done summary is taken at the next frame end"
            assert rb.summary == summary  # written on the fork of the trigger frame's cache
            handed = i
            # what sync IPS holds: prefix, then every frame since the trigger, in order
            assert bg.context_tokens == sync.context_tokens
            for a, b in zip(_kv(bg), _kv(sync), strict=True):
                assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
            continue
        if rs.context_event:  # the next IPS: not part of this comparison
            break
        assert rb.p_silence == pytest.approx(rs.p_silence, rel=1e-3)
    assert handed is not None and handed > trigger + during
    assert bg.summaries_triggered == 1 and bg.task_state().progress_summary == summary


def test_the_old_cache_is_used_up_to_the_limit_then_the_summary_is_awaited(model, gate):
    s = AssistantSession(model, cfg(ips_background=True))
    s.set_task(GOAL, RECIPE)
    imgs, i = frames(120), 0
    while s._ips_job is None:
        assert not s.push_frame(imgs[i], 0.5 * i).context_event
        i += 1
    started, per_frame = s.context_tokens, len(model.chat.image_ids(1))
    while s.context_tokens + per_frame < s.config.context_limit:  # frames go on inside the reserve
        r = s.push_frame(imgs[i], 0.5 * i)
        assert not r.context_event
        i += 1
    assert s.context_tokens - started >= s.config.reserve - 4 * per_frame
    gate.set()  # the next frame reaches L: its end must take the summary, done or not
    r = s.push_frame(imgs[i], 0.5 * i)
    assert r.context_event == "ips" and r.summary
    assert s._ips_job is None and s.context_tokens < s.config.trigger_tokens


def test_reset_drops_a_summary_being_written(model, gate):
    s = AssistantSession(model, cfg(ips_background=True))
    s.set_task(GOAL, RECIPE)
    imgs, i = frames(80), 0
    while s._ips_job is None:
        s.push_frame(imgs[i], 0.5 * i)
        i += 1
    job = s._ips_job
    s.reset()
    gate.set()
    job.done.wait(60)
    assert job.error is None
    events = [s.push_frame(f, 0.5 * k).context_event for k, f in enumerate(imgs[:10])]
    assert not any(events) and s.summaries_triggered == 0


def test_feed_log_replays_what_was_fed_and_forgets_what_was_taken_back():
    img = 99
    log = FeedLog(img, start=40)
    a, b = torch.arange(8.0).reshape(2, 4), torch.full((1, 4), 7.0)
    log.record([1, img, 2, img], a)
    log.record([img, 3, 4], b)
    ids, feats, end = log.since(2)
    assert ids == [2, img, img, 3, 4] and end == 7
    assert torch.equal(feats, torch.cat([a[1:], b]))
    log.truncate(4)  # a reply taken back: [img, 3, 4] and its frame row go
    ids, feats, end = log.since(0)
    assert ids == [1, img, 2, img] and torch.equal(feats, a) and end == 4 and log.low == 4
    assert log.since(4) == ([], None, 4)
