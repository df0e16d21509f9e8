"""Many wearers, one model (engine/batch.py): batched sessions decide like separate sessions.

Three sessions with different tasks, user turns and stream lengths (so the batch shrinks as
streams end and the caches differ in length), on a tiny real model whose P(silence) varies by
frame, with θ set so that some frames speak and the context limit is reached (IPS) in each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.batch import push_frames_together
from proassist_ros.model import load

TASKS = [("I want to make a cup of tea", "1. Boil the water\n2. Put a tea bag in the cup\n3. Pour the water"),
         ("Help me fix the bike", "1. Remove the wheel\n2. Patch the tube\n3. Refit the wheel"),
         ("", "")]  # the third stream runs without a task
LENGTHS = [40, 27, 33]
TURNS = {0: {9: "What should I do next?"}, 1: {3: "Is the wheel off?", 20: "Now what?"}, 2: {15: "Hello?"}}


@pytest.fixture(scope="module")
def model():
    m = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=0)
    with torch.no_grad():  # a scaled random silence row: P(silence) depends on the input
        row = m.llm.lm_head.weight[m.chat.silence_id]
        row.copy_(torch.randn(row.shape, generator=torch.Generator().manual_seed(1)) * 3.0)
    return m


def _session(model, k: int) -> AssistantSession:
    s = AssistantSession(model, EngineConfig(theta=0.5, step_matcher="none", reply_max_tokens=6,
                                             summary_max_tokens=12, context_limit=128, reserve=16,
                                             drop_middle_keep_last=24, min_gap_s=0.0))
    goal, recipe = TASKS[k]
    if goal:
        s.set_task(goal, recipe)
    return s


def _frames(k: int) -> list[tuple[np.ndarray, float]]:
    rng = np.random.default_rng(10 + k)
    return [(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), 0.5 * i) for i in range(LENGTHS[k])]


def _turns(s: AssistantSession, k: int, i: int) -> None:
    if i in TURNS[k]:
        s.push_user_utterance(TURNS[k][i], 0.5 * i - 0.1)


def test_batched_sessions_equal_separate_sessions(model):
    alone, solo = [], []
    for k in range(3):
        s, out = _session(model, k), []
        solo.append(s)
        for i, frame in enumerate(_frames(k)):
            _turns(s, k, i)
            out.append(s.push_frame(*frame))
        alone.append(out)

    sessions, streams = [_session(model, k) for k in range(3)], [_frames(k) for k in range(3)]
    together: list[list] = [[], [], []]
    for i in range(max(LENGTHS)):
        live = [k for k in range(3) if i < LENGTHS[k]]
        for k in live:
            _turns(sessions[k], k, i)
        results = push_frames_together([sessions[k] for k in live], [streams[k][i] for k in live])
        for k, r in zip(live, results):
            together[k].append(r)

    spoke = sum(r.spoke for out in alone for r in out)
    events = sum(bool(r.context_event) for out in alone for r in out)
    assert spoke >= 5 and events >= 3, (spoke, events)  # the test exercises replies and IPS
    for a, b in zip(alone, together):
        assert [r.spoke for r in b] == [r.spoke for r in a]
        assert [r.text for r in b] == [r.text for r in a]
        assert [r.context_event for r in b] == [r.context_event for r in a]
        assert np.allclose([r.p_silence for r in b], [r.p_silence for r in a], atol=1e-4)
    assert [s.context_tokens for s in sessions] == [s.context_tokens for s in solo]


def test_batch_errors(model):
    s = _session(model, 0)
    with pytest.raises(ValueError, match="2 frames for 1 sessions"):
        push_frames_together([s], _frames(0)[:2])
    with pytest.raises(ValueError, match="twice"):
        push_frames_together([s, s], _frames(0)[:2])
    other = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=0)
    with pytest.raises(ValueError, match="share one model"):
        push_frames_together([s, AssistantSession(other)], _frames(0)[:2])


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_lean_batched_forward_equals_transformers_forward(quantize, monkeypatch):
    """The batched forward takes model/decode.py's lean path on CPU; its logits and the caches it
    leaves equal transformers' decoder under the same padding mask (a hooked LLM keeps
    transformers' forward, so the hook selects the reference). Streams of different pasts
    (one empty) and chunk lengths (1 and more), three rounds."""
    from proassist_ros.model import fused_decode
    from proassist_ros.model.batched import forward_chunks_batched
    from proassist_ros.model.streaming import StreamState

    monkeypatch.setattr(fused_decode, "_enabled", [False])  # the lean layers (fused: the next test)
    m = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=2, quantize=quantize)
    g = torch.Generator().manual_seed(0)
    rounds = [[7, 1, 3], [1, 4, 1], [2, 1, 5]]  # chunk length per stream per round
    runs = {}
    for path in ("lean", "hf"):
        handle = m.llm.register_forward_hook(lambda *a: None) if path == "hf" else None
        g.manual_seed(0)
        states, logits = [StreamState.new() for _ in range(3)], []
        for lens in rounds:
            chunks = [(torch.randint(10, m.vocab_size - 1, (t,), generator=g).tolist(), None) for t in lens]
            logits.append(torch.stack(forward_chunks_batched(m, states, chunks)))
        if handle is not None:
            handle.remove()
        runs[path] = (states, logits)
    for lean, hf in zip(runs["lean"][1], runs["hf"][1]):
        assert torch.allclose(lean, hf, atol=1e-5, rtol=0), (lean - hf).abs().max()
    for a, b in zip(*(runs[p][0] for p in ("lean", "hf"))):
        assert a.num_tokens == b.num_tokens
        for la, lb in zip(a.cache.layers, b.cache.layers):
            # 1e-4: int8 rounds each activation row to int16, so a 1e-7 difference upstream can move a
            # later layer's keys by ~1e-5; a wrong mask or position moves them by ~1e-1
            assert torch.allclose(la.keys, lb.keys, atol=1e-4) and torch.allclose(la.values, lb.values, atol=1e-4)


def _batched_rounds(m, rounds, seed: int = 0):
    from proassist_ros.model.batched import forward_chunks_batched
    from proassist_ros.model.streaming import StreamState

    g = torch.Generator().manual_seed(seed)
    states, logits = [StreamState.new() for _ in rounds[0]], []
    for lens in rounds:
        chunks = [(torch.randint(10, m.vocab_size - 1, (t,), generator=g).tolist(), None) for t in lens]
        logits.append(torch.stack(forward_chunks_batched(m, states, chunks)))
    return states, logits


def test_fused_batched_forward_equals_lean(monkeypatch):
    """Several wearers' chunks through the fused int8 C routine in one call (packed rows, each
    stream's attention over its own cache) give the lean packed forward's logits and caches up to
    float rounding; every round after the first (whose caches are still empty) takes the C routine."""
    from proassist_ros.model import fused_decode, int8_kernel

    m = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=2, quantize="int8")
    rounds = [[7, 1, 3], [1, 4, 1], [2, 1, 5], [1, 1, 1]]
    native, calls = int8_kernel.decode_rows_fn(), []
    monkeypatch.setattr(int8_kernel, "decode_rows_fn", lambda: lambda *a: calls.append(a[5]) or native(*a))
    with torch.inference_mode():
        fused = _batched_rounds(m, rounds)
        assert calls == [3, 3, 3]  # three streams per call, rounds 2-4
        monkeypatch.setattr(fused_decode, "_enabled", [False])
        lean = _batched_rounds(m, rounds)
    for x, y in zip(fused[1], lean[1]):
        assert torch.allclose(x, y, atol=1e-3, rtol=0), (x - y).abs().max()
    for a, b in zip(fused[0], lean[0]):
        assert a.num_tokens == b.num_tokens
        for la, lb in zip(a.cache.layers, b.cache.layers):
            assert torch.allclose(la.keys, lb.keys, atol=1e-4) and torch.allclose(la.values, lb.values, atol=1e-4)
