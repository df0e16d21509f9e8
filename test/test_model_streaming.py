"""Streaming on the KV cache: equivalence with a full forward, θ rule, replies, Drop-Middle."""

from __future__ import annotations

import pytest
import torch

from proassist_ros.model import (
    StreamState,
    drop_middle,
    forward_chunk,
    load,
    step_frame,
)
from proassist_ros.model.testing import calibrate_silence, final_hidden, random_frames


def build_stream(model, n_frames=22, seed=0):
    """Chunks of a stream with interleaved user / knowledge / assistant turns (spec §1.6, §2.1).

    Returns a list of (input_ids, frame_feats or None); assistant replies are teacher-forced
    chunks of their own, right after the frame that triggered them.
    """
    chat = model.chat
    feats = model.embed_frames(random_frames(n_frames, seed=seed))  # (N, I, D)
    chunks = []
    for k in range(n_frames):
        ids = []
        if k == 0:
            ids += chat.bos_ids() + chat.message_ids("system", "You are a proactive assistant.")
        if k == 3:
            ids += chat.message_ids("user", "I want to assemble the toy car.")
            ids += chat.message_ids("system", "Task knowledge: 1. attach wheels 2. add cabin")
        if k == 12:
            ids += chat.message_ids("user", "What next <|eot_id|> <image>?")
        chunks.append((ids + chat.image_ids(1), feats[k]))
        if k in (4, 9, 13, 19):
            chunks.append((chat.message_ids("assistant", f"Reply number {k}, attach the wheel."), None))
    return chunks


def full_sequence(chunks):
    ids = [i for c, _ in chunks for i in c]
    feats = torch.cat([f for _, f in chunks if f is not None])
    return ids, feats


@pytest.mark.parametrize("chat_format,tokens_per_frame", [("llama3", 5), ("chatml", 1), ("chatml", 10)])
def test_streaming_equals_full_forward(chat_format, tokens_per_frame):
    model = load("tiny", chat_format=chat_format, tokens_per_frame=tokens_per_frame, seed=1)
    chunks = build_stream(model)
    state = StreamState.new()
    streamed = torch.cat([forward_chunk(model, state, ids, f) for ids, f in chunks])  # (T, V)
    ids, feats = full_sequence(chunks)
    assert state.num_tokens == len(ids) == state.cache.get_seq_length()
    with torch.no_grad():
        emb = model.embed_tokens(torch.tensor(ids), feats)[None]
        full = model.llm(inputs_embeds=emb).logits[0].float()
    assert streamed.dtype == torch.float32 and streamed.shape == full.shape == (len(ids), model.vocab_size)
    assert torch.allclose(streamed, full, atol=1e-3, rtol=0), (streamed - full).abs().max()
    # The frames really are in the sequence: other features change the logits.
    other = model.embed_tokens(torch.tensor(ids), torch.randn_like(feats))[None]
    with torch.no_grad():
        assert not torch.allclose(model.llm(inputs_embeds=other).logits[0].float(), full, atol=1e-3)


@pytest.fixture(scope="module")
def calibrated():
    """Tiny model whose P(silence) at the 22 decision points is spread over (0, 1)."""
    model = load("tiny", chat_format="llama3", tokens_per_frame=1, seed=2)
    chunks = [c for c in build_stream(model) if c[1] is not None]  # frames only, no replies
    ids, feats = full_sequence(chunks)
    hidden = final_hidden(model, ids, feats)
    ends = torch.cumsum(torch.tensor([len(c) for c, _ in chunks]), 0) - 1
    targets = [0.04 + 0.92 * ((7 * k) % 22) / 21 for k in range(len(chunks))]
    calibrate_silence(model, hidden[ends], targets)
    return model, chunks, targets


def decide_all(model, chunks, theta, max_new_tokens=3):
    """Decisions of every frame on the same fixed context (each branch on a clone)."""
    base, steps = StreamState.new(), []
    for ids, f in chunks:
        steps.append(step_frame(model, base.clone(), ids, f, theta, max_new_tokens=max_new_tokens))
        forward_chunk(model, base, ids, f)
    return steps


def test_p_silence_is_fp32_softmax(calibrated):
    model, chunks, targets = calibrated
    steps = decide_all(model, chunks, theta=0.5)
    got = [s.p_silence for s in steps]
    assert got == pytest.approx(targets, abs=2e-3)


def test_theta_monotonic_and_rule(calibrated):
    model, chunks, _ = calibrated
    counts = []
    for theta in (0.1, 0.3, 0.5, 0.7, 0.9):
        steps = decide_all(model, chunks, theta)
        for s in steps:  # silent iff P(silence) > θ (P15: lower θ = fewer utterances)
            assert (len(s.token_ids) == 0) == (s.p_silence > theta)
            assert s.spoke == bool(s.text) and (not s.spoke or s.token_ids)
        counts.append(sum(s.spoke for s in steps))
    assert counts == sorted(counts) and counts[0] < counts[-1], counts
    assert counts[0] <= 3 and counts[-1] >= 18, counts


def test_theta_nonpositive_is_plain_argmax(calibrated):
    model, chunks, _ = calibrated
    base = StreamState.new()
    for theta in (0.0, -1.0):
        for s, (ids, f) in zip(decide_all(model, chunks, theta), chunks, strict=True):
            logits = forward_chunk(model, base.clone(), ids, f)[-1]
            assert (s.token_ids == []) == (int(logits.argmax()) == model.chat.silence_id)
            if s.token_ids:
                assert s.token_ids[0] == int(logits.argmax())
            forward_chunk(model, base, ids, f) if theta == 0.0 else None
        base = StreamState.new()
    # Here eot is the argmax everywhere (the other 49k tokens share the rest): θ ≤ 0 is not the
    # θ rule, which would speak at every frame with P(silence) ≤ θ.
    assert all(not s.token_ids for s in decide_all(model, chunks, 0.0))
    # An uncalibrated model's argmax is not eot: θ ≤ 0 speaks, starting with the argmax token.
    raw = load("tiny", chat_format="llama3", tokens_per_frame=1, seed=2)
    ids, f = chunks[0]
    step = step_frame(raw, StreamState.new(), ids, f, theta=0.0, max_new_tokens=2)
    logits = forward_chunk(raw, StreamState.new(), ids, f)[-1]
    assert step.token_ids and step.token_ids[0] == int(logits.argmax()) != raw.chat.silence_id


def test_reply_feeding_and_limits(calibrated):
    model, chunks, targets = calibrated
    k = min(range(len(chunks)), key=lambda i: targets[i])  # a frame where it speaks
    prefix = chunks[:k]
    ids, f = chunks[k]

    def run(**kw):
        state = StreamState.new()
        for c, g in prefix:
            forward_chunk(model, state, c, g)
        before = state.num_tokens
        step = step_frame(model, state, ids, f, theta=0.5, **kw)
        return step, state.num_tokens - before - len(ids)

    step, fed = run(max_new_tokens=7)
    assert step.p_silence < 0.5 and len(step.token_ids) == 7 and not step.finished
    assert fed == 6  # the token at the limit is generated but not fed (original loop)
    assert model.chat.silence_id not in step.token_ids
    step_eot, fed_eot = run(max_new_tokens=7, append_eot_after_reply=True)
    assert step_eot.token_ids == step.token_ids and fed_eot == 8  # ...last token + eot (P1)

    # A reply that stops on the end-of-turn token: make eot likely right after the 3rd token.
    head = model.llm.get_output_embeddings().weight
    saved = head.clone()
    try:
        seq = [i for c, _ in prefix for i in c] + ids + step.token_ids[:3]
        hidden = final_hidden(model, seq, torch.cat([g for _, g in prefix] + [f]))
        at = len(seq) - 4  # last frame token, then tokens 1, 2, 3 of the reply
        calibrate_silence(model, hidden[at:], [0.01, 1e-7, 1e-7, 0.999])
        stop, fed_stop = run(max_new_tokens=50)
        assert stop.finished and stop.token_ids == step.token_ids[:3]
        assert fed_stop == 3  # tokens 1..3 are fed, the eot that ends the reply is not
        stop_eot, fed_stop_eot = run(max_new_tokens=50, append_eot_after_reply=True)
        assert stop_eot.token_ids == stop.token_ids and fed_stop_eot == 4
    finally:
        with torch.no_grad():
            head.copy_(saved)


def test_drop_middle_positions_continue_from_short_cache():
    """After Drop-Middle, kept keys keep their RoPE angles; new tokens continue at len (P9).

    One decoder layer: its keys depend only on token and position, so a plain forward over the
    kept tokens at their original positions is an exact reference for the sliced cache.
    """
    model = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=3, num_layers=1)
    chunks = build_stream(model, n_frames=12)
    ids, feats = full_sequence(chunks)
    state = StreamState.new()
    forward_chunk(model, state, ids, feats)
    n, keep_prefix, keep_last = len(ids), 20, 15
    drop_middle(state, keep_prefix, keep_last)
    assert state.num_tokens == keep_prefix + keep_last == state.cache.get_seq_length()
    new_ids = model.chat.message_ids("user", "Next step?")
    got = forward_chunk(model, state, new_ids)
    assert state.num_tokens == keep_prefix + keep_last + len(new_ids)

    kept = list(range(keep_prefix)) + list(range(n - keep_last, n))
    all_emb = model.embed_tokens(torch.tensor(ids), feats)
    new_emb = model.embed_tokens(torch.tensor(new_ids))
    emb = torch.cat([all_emb[kept], new_emb])[None]
    pos = torch.tensor(kept + [keep_prefix + keep_last + i for i in range(len(new_ids))])[None]
    with torch.no_grad():
        want = model.llm(inputs_embeds=emb, position_ids=pos).logits[0, -len(new_ids):].float()
    assert torch.allclose(got, want, atol=1e-3, rtol=0)
    # Positions matter: continuing from the original length would give other logits.
    pos_orig = torch.tensor(kept + [n + i for i in range(len(new_ids))])[None]
    with torch.no_grad():
        other = model.llm(inputs_embeds=emb, position_ids=pos_orig).logits[0, -len(new_ids):].float()
    assert not torch.allclose(got, other, atol=1e-3)

    small = StreamState.new()
    forward_chunk(model, small, ids[:30], feats[: ids[:30].count(model.chat.img_token_id)])
    drop_middle(small, 20, 15)  # nothing to drop
    assert small.num_tokens == 30


# ---- quantize: int8 (model/quantize.py) ---------------------------------------------------------
def test_int8_decides_like_fp32(calibrated):
    """Weight-only int8 Linear layers move P(silence) by little, so every frame whose fp32 P(silence)
    is not within that tolerance of θ decides alike. (A random tiny LLM's reply argmaxes are near
ties, so its reply tokens are not compared; the shipped model's are, in docs/performance.md.)"""
    import copy

    from proassist_ros.model.quantize import is_quantized, quantize_llm

    model, chunks, targets = calibrated
    q = copy.deepcopy(model)
    quantize_llm(q.llm, "int8")
    assert is_quantized(q.llm) and not is_quantized(model.llm)
    tol = 0.1  # a tiny random LLM (hidden 64) quantizes coarser than a real one
    for theta in (0.3, 0.5, 0.7):
        ref, got = decide_all(model, chunks, theta), decide_all(q, chunks, theta)
        dp = [abs(a.p_silence - b.p_silence) for a, b in zip(ref, got)]
        assert max(dp) < tol, dp
        clear = [k for k, s in enumerate(ref) if abs(s.p_silence - theta) > tol]
        assert len(clear) >= 14
        assert [got[k].spoke for k in clear] == [ref[k].spoke for k in clear]


def test_int8_linear_paths_match_the_dequantized_weight():
    """Every kernel of Int8Linear (the native one and torch's packed one for a few rows, the
    de-quantized fp32 GEMM for many) computes x·Wqᵀ + b for the rounded weight Wq, which is within
    half a step of the original weight. The native kernel's int16 activations are the closest."""
    from proassist_ros.model import int8_kernel
    from proassist_ros.model.quantize import PACKED_MAX_ROWS, Int8Linear

    torch.manual_seed(0)
    lin = torch.nn.Linear(96, 40)
    q = Int8Linear(lin)
    wq = q.dequantized()
    assert q.qweight.dtype == torch.int8
    assert (wq - lin.weight).abs().max() <= q.scale.max() / 2 + 1e-7
    tol = {"native": 2e-3, "torch": 2e-2}  # int16 vs bf16 activations
    try:
        for kernel in ("native", "torch"):
            int8_kernel.use(kernel)
            assert int8_kernel.available() == (kernel == "native"), int8_kernel.why_unavailable()
            for rows in (1, 3, PACKED_MAX_ROWS, PACKED_MAX_ROWS + 1):
                x = torch.randn(1, rows, 96)
                ref = x @ wq.T + lin.bias
                got = q(x)
                assert got.shape == (1, rows, 40) and got.dtype == torch.float32
                t = tol[kernel] if rows <= PACKED_MAX_ROWS else 1e-5
                assert torch.allclose(got, ref, atol=t, rtol=t), (kernel, rows, (got - ref).abs().max())
    finally:
        int8_kernel.use("native")


def test_int8_kernel_builds_here_and_falls_back_with_a_reason(tmp_path, monkeypatch):
    """`make setup` builds the native kernel on this machine (a C compiler is a stated dependency);
    it handles shapes off its vector width; without a working compiler int8 still runs, on torch's
    kernel, and says why."""
    from proassist_ros.model import int8_kernel
    from proassist_ros.model.cache import CACHE_ENV
    from proassist_ros.model.quantize import Int8Linear, kernel_name

    int8_kernel.use("native")
    assert int8_kernel.available(), int8_kernel.why_unavailable()
    assert kernel_name() == "native"
    g = torch.Generator().manual_seed(1)
    for m, k, n in ((1, 576, 1536), (5, 1000, 7), (2, 17, 3), (1, 2304, 9)):  # K > the kernel's int32 block
        x = torch.randn(m, k, generator=g) * torch.logspace(-2, 1, k)  # outlier channels, as SmolLM2 has
        w = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
        scale, bias = torch.rand(n, generator=g) / 50, torch.randn(n, generator=g)
        ref = x.double() @ (w.double() * scale.double()[:, None]).T + bias.double()
        got = int8_kernel.linear(x, w, scale, bias).double()
        assert got.shape == (m, n)
        assert (got - ref).abs().max() <= 1e-3 * ref.abs().max(), (m, k, n)

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))  # a cache without the built kernel
    monkeypatch.setenv("CC", "/bin/false")
    try:
        int8_kernel.use("native")
        assert not int8_kernel.available()
        assert "compiler failed" in int8_kernel.why_unavailable()
        lin = torch.nn.Linear(64, 8)
        x = torch.randn(2, 64)
        assert torch.allclose(Int8Linear(lin)(x), lin(x), atol=0.05)
        assert kernel_name() == "torch packed"
    finally:
        monkeypatch.undo()
        int8_kernel.use("native")
    assert int8_kernel.available()


def test_rescored_head_is_fp32_where_the_probability_is():
    """The int8 head's scan finds the logits within the margin of the top; those are the fp32
    head's exactly (so the argmax and P(silence) near θ are), the far tail is int8-close."""
    from proassist_ros.model.quantize import HEAD_EXACT_MARGIN, PACKED_MAX_ROWS, RescoredHead

    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 5000, bias=False)
    with torch.no_grad():
        lin.weight.mul_(torch.linspace(0.2, 6.0, 5000)[:, None])  # a spread: a top, a tail
    head = RescoredHead(lin)
    assert head.weight is lin.weight  # no second fp32 copy
    x = torch.randn(1, 3, 64)
    ref, got = lin(x), head(x)
    assert got.shape == ref.shape and got.dtype == torch.float32
    for r, g in zip(ref[0], got[0]):
        near = r >= r.max() - HEAD_EXACT_MARGIN + 0.5  # inside the margin whatever the int8 error
        assert near.sum() >= 2 and (~near).sum() > 100
        assert torch.allclose(g[near], r[near], atol=1e-5) and g.argmax() == r.argmax()
        assert torch.allclose(torch.softmax(g, -1), torch.softmax(r, -1), atol=1e-4)
        assert not torch.equal(g[~near], r[~near])  # the tail is the int8 scan's
    many = torch.randn(PACKED_MAX_ROWS + 1, 64)  # prompts: the fp32 head as it is
    assert torch.allclose(head(many), lin(many), atol=1e-5)


def test_quantize_auto_is_int8_on_cpu_for_fp32_only():
    from proassist_ros.model.quantize import check_quantize, is_quantized

    assert check_quantize("auto", "cpu") == check_quantize("auto", "cpu", torch.float32) == "int8"
    assert check_quantize("auto", "cpu", torch.float16) == "none"
    assert check_quantize("auto", "cuda:0", torch.float32) == "none"
    assert is_quantized(load("tiny", seed=2, quantize="auto").llm)
    assert not is_quantized(load("tiny", seed=2, dtype="bfloat16", quantize="auto").llm)


def test_int8_load_and_errors():
    model = load("tiny", seed=2, quantize="int8")
    from proassist_ros.model.quantize import is_quantized

    assert is_quantized(model.llm) and model.dtype == torch.float32
    state = StreamState.new()
    chunks = build_stream(model, n_frames=4)
    logits = torch.cat([forward_chunk(model, state, ids, f) for ids, f in chunks])
    assert torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="one of auto, none, int8"):
        load("tiny", quantize="int4")
    with pytest.raises(ValueError, match="CPU only"):
        load("tiny", device="cuda:0", quantize="int8")
    with pytest.raises(ValueError, match="float32"):
        load("tiny", dtype="float16", quantize="int8")


def test_keep_returns_the_chosen_rows_only():
    """``keep`` gives exactly those rows of the full logits (the head runs on them only), and the
    cache is the same either way."""
    model = load("tiny", seed=1)
    chunks = build_stream(model, n_frames=6)
    full, part = StreamState.new(), StreamState.new()
    for ids, f in chunks:
        ref = forward_chunk(model, full, ids, f)
        keep = [-1, 0, len(ids) // 2]
        got = forward_chunk(model, part, ids, f, keep=keep)
        assert got.shape == (3, model.vocab_size)
        assert torch.allclose(got, ref[[len(ids) - 1, 0, len(ids) // 2]], atol=1e-5, rtol=0)
    assert part.num_tokens == full.num_tokens
    assert all(torch.equal(a.keys, b.keys) for a, b in zip(part.cache.layers, full.cache.layers))


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_lean_forward_equals_transformers_forward(quantize, monkeypatch):
    """model/decode.py walks the same modules with the same ops as transformers' Llama forward:
    chunk by chunk (a prompt, single tokens, short chunks, a position gap as Drop-Middle leaves),
    the logits and the cache it leaves are transformers' (fp32 on CPU, inference)."""
    from transformers import DynamicCache

    from proassist_ros.model import decode, fused_decode
    from proassist_ros.model.kv_cache import new_kv_cache

    model = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=3, quantize=quantize)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, model.vocab_size - 1, (60,), generator=g)
    cuts = [0, 20, 21, 22, 25, 31, 32, 40, 41, 60]
    caches = {"lean": new_kv_cache(model.llm.config), "hf": new_kv_cache(model.llm.config)}
    monkeypatch.setattr(fused_decode, "_enabled", [False])  # the lean layers (the fused C step: the test below)
    with torch.inference_mode():
        for a, b in zip(cuts, cuts[1:]):
            emb = model.embed_tokens(ids[a:b], None)[None]  # (1, T, D)
            pos = torch.arange(b - a)[None] + a + (7 if a >= 31 else 0)  # positions jump by 7 after 31
            keep = torch.tensor([b - a - 1]) if b - a > 3 else None
            assert decode.supported(model.llm, emb)
            lean = decode.forward(model.llm, emb, caches["lean"], pos, keep)
            hf = model.llm(inputs_embeds=emb, cache=caches["hf"], position_ids=pos, use_cache=True,
                           **({} if keep is None else {"logits_to_keep": keep})).logits
            assert lean.shape == hf.shape
            assert torch.allclose(lean, hf, atol=1e-5, rtol=0), (a, b, (lean - hf).abs().max())
    for layer_l, layer_h in zip(caches["lean"].layers, caches["hf"].layers):
        assert torch.allclose(layer_l.keys, layer_h.keys, atol=1e-5)
        assert torch.allclose(layer_l.values, layer_h.values, atol=1e-5)
    assert caches["lean"].get_seq_length() == 60
    with torch.enable_grad():  # training keeps transformers' forward
        assert not decode.supported(model.llm, emb)
    handle = model.llm.register_forward_hook(lambda *a: None)  # an observer sees every call
    with torch.inference_mode():
        assert not decode.supported(model.llm, emb)
    handle.remove()
    assert isinstance(caches["lean"], DynamicCache)


def test_fused_decode_equals_lean_forward(monkeypatch):
    """model/fused_decode.py (one C call per chunk, int8) gives the lean forward's logits and cache
    up to float rounding: single tokens and chunks of 2–5 positions (causal within the chunk) after
    a prompt, after a Drop-Middle position gap and after a cropped cache (a non-contiguous buffer),
    on the tiny int8 model. It serves every chunk after the prompt (which is longer than
    ``MAX_ROWS``), and not fp32 models."""
    from proassist_ros.model import decode, fused_decode, int8_kernel
    from proassist_ros.model.kv_cache import new_kv_cache

    assert int8_kernel.available(), int8_kernel.why_unavailable()  # built by make setup on this machine
    model = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=3, quantize="int8")
    assert fused_decode.plan(model.llm) is not None
    assert fused_decode.plan(load("tiny", seed=3).llm) is None  # fp32: the lean forward serves
    native, calls = int8_kernel.decode_rows_fn(), []
    monkeypatch.setattr(int8_kernel, "decode_rows_fn", lambda: lambda *a: calls.append(1) or native(*a))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, model.vocab_size - 1, (60,), generator=g)
    assert fused_decode.MAX_ROWS < 40
    cuts = [0, 40, 41, 42, 45, 46, 47, 48, 50, 51, 52, 56, 57, 60]
    runs = {}
    for fused in (True, False):
        fused_decode.enable(fused)
        try:
            cache, logits = new_kv_cache(model.llm.config), []
            with torch.inference_mode():
                for a, b in zip(cuts, cuts[1:]):
                    if a == 50:
                        for layer in cache.layers:  # cropped as streaming.crop does: views, not contiguous
                            layer.keys, layer.values = layer.keys[..., :48, :], layer.values[..., :48, :]
                    emb = model.embed_tokens(ids[a:b], None)[None]
                    pos = torch.arange(b - a)[None] + a + (5 if a >= 46 else 0)  # a position gap after 46
                    logits.append(decode.forward(model.llm, emb, cache, pos))
            runs[fused] = (cache, logits)
            assert len(calls) == (len(cuts) - 2 if fused else 0)  # every chunk after the prompt took the C routine
            calls.clear()
        finally:
            fused_decode.enable(True)
    for x, y in zip(runs[True][1], runs[False][1]):
        assert torch.allclose(x, y, atol=1e-3, rtol=0), (x - y).abs().max()
        assert int(x.argmax()) == int(y.argmax())
    for la, lb in zip(runs[True][0].layers, runs[False][0].layers):
        assert la.keys.shape == lb.keys.shape
        assert torch.allclose(la.keys, lb.keys, atol=1e-4) and torch.allclose(la.values, lb.values, atol=1e-4)


def test_native_products_are_bit_identical_with_helper_threads():
    """csrc/row_pool.c shares a product's weight rows out among helper threads: any number of
    threads gives the one-thread result bit for bit (shapes with ragged last blocks, several
    activation rows), also while another thread runs products at the same time (it computes on its
    own, the helpers being taken)."""
    import threading

    from proassist_ros.model import int8_kernel

    assert int8_kernel.available(), int8_kernel.why_unavailable()
    g = torch.Generator().manual_seed(1)
    cases = [(m, torch.randn(m, k, generator=g), torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8),
              torch.rand(n, generator=g) / 50) for m, n, k in [(1, 4099, 96), (3, 2050, 256), (5, 1001, 640)]]
    before = int8_kernel.threads()
    try:
        int8_kernel.set_threads(1)
        alone = [int8_kernel.linear(x, w, s, None) for _, x, w, s in cases]
        for (_, x, w, s), y in zip(cases, alone):  # every row computed once, in its place
            ref = x.double() @ (w.double() * s.double()[:, None]).T
            assert torch.allclose(y.double(), ref, rtol=0, atol=2e-3 * float(ref.abs().max()))
        for n in (2, 3):
            int8_kernel.set_threads(n)
            assert all(torch.equal(int8_kernel.linear(x, w, s, None), y) for (_, x, w, s), y in zip(cases, alone))
        out: dict[int, list] = {0: [], 1: []}

        def run(k: int) -> None:
            for _ in range(30):
                out[k].extend(int8_kernel.linear(x, w, s, None) for _, x, w, s in cases)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert all(torch.equal(y, alone[i % 3]) for k in range(2) for i, y in enumerate(out[k]))
    finally:
        int8_kernel.set_threads(before)


@pytest.mark.parametrize("helpers", [1, 2])
def test_fused_decode_is_thread_safe(helpers):
    """Two streams decoding at once in two threads (as a background IPS summary and the next
    frame's decision do) each get exactly what they get alone: the C routine releases the GIL and
    each call has its own table of cache buffers. With helper threads (row_pool.c: the attention
    heads are shared out), results are also those of one thread, bit for bit."""
    import threading

    from proassist_ros.model import decode, int8_kernel
    from proassist_ros.model.kv_cache import new_kv_cache

    model = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=3, quantize="int8")
    before = int8_kernel.threads()

    def run(seed: int, out: list) -> None:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(10, model.vocab_size - 1, (300,), generator=g)
        cache = new_kv_cache(model.llm.config)
        with torch.inference_mode():
            for a, b in [(0, 40)] + [(i, i + 1) for i in range(40, 300)]:
                emb = model.embed_tokens(ids[a:b], None)[None]
                out.append(decode.forward(model.llm, emb, cache, torch.arange(a, b)[None])[0, -1])

    try:
        int8_kernel.set_threads(1)
        alone = [[], []]
        for k in range(2):
            run(k, alone[k])
        int8_kernel.set_threads(helpers)
        together = [[], []]
        threads = [threading.Thread(target=run, args=(k, together[k])) for k in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        helped = []
        run(0, helped)
    finally:
        int8_kernel.set_threads(before)
    for k in range(2):
        assert len(together[k]) == len(alone[k]) == 261
        assert all(torch.equal(x, y) for x, y in zip(together[k], alone[k])), k
    assert all(torch.equal(x, y) for x, y in zip(helped, alone[0]))


def _cache_rows(state):
    return [(layer.keys.clone(), layer.values.clone()) for layer in state.cache.layers]


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_lookahead_gives_the_same_reply_and_cache(quantize):
    """Prompt-lookup drafts (model/lookup.py, ``lookahead``) change how many tokens a forward
    feeds, never the reply: the same tokens, the same ``finished``, and a cache holding exactly
    what one-token-at-a-time decoding leaves — with drafts that are all right (the history holds
    the reply), all wrong (random history), partly right, and cut by ``max_new_tokens``; and the
    draft never proposes an ``<image>`` slot."""
    from proassist_ros.model import fused_decode, lookup, streaming
    from proassist_ros.model.lookup import Drafter

    model = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=4, quantize=quantize)
    chunks = [c for c in build_stream(model) if c[1] is not None][:6]
    base = StreamState.new()
    for ids, f in chunks[:-1]:
        forward_chunk(model, base, ids, f)
    ids, f = chunks[-1]
    plain = base.clone()
    ref = step_frame(model, plain, ids, f, theta=1.0, max_new_tokens=24)
    assert len(ref.token_ids) >= 8, ref.token_ids  # θ = 1: it speaks; a reply long enough to draft

    g = torch.Generator().manual_seed(5)
    junk = torch.randint(10, model.vocab_size - 1, (200,), generator=g).tolist()
    corrupt = list(ref.token_ids)
    corrupt[5] = (corrupt[5] + 1) % model.vocab_size
    histories = {"right": ref.token_ids + [model.chat.img_token_id], "wrong": junk,
                 "partly right": corrupt, "none": []}
    forwards = {}
    real = streaming.forward_chunk
    for name, hist in histories.items():
        for max_new, k in ((24, 4), (24, 16), (7, 6)):
            want = ref if max_new == 24 else step_frame(model, cut := base.clone(), ids, f, 1.0, max_new_tokens=max_new)
            want_state = plain if max_new == 24 else cut
            state = base.clone()
            state.history = list(hist)
            calls: list[int] = []
            streaming.forward_chunk = lambda *a, calls=calls, **kw: calls.append(len(a[2])) or real(*a, **kw)
            try:
                got = step_frame(model, state, ids, f, theta=1.0, max_new_tokens=max_new, lookahead=k)
            finally:
                streaming.forward_chunk = real
            assert (got.token_ids, got.finished, got.text) == (want.token_ids, want.finished, want.text), name
            assert state.num_tokens == want_state.num_tokens == state.cache.get_seq_length(), name
            for (ka, va), (kb, vb) in zip(_cache_rows(state), _cache_rows(want_state)):
                assert torch.allclose(ka, kb, atol=1e-5) and torch.allclose(va, vb, atol=1e-5), name
            forwards[name, max_new, k] = len(calls)
    n_plain = len(ref.token_ids)  # the frame's forward + one per fed reply token
    assert forwards["right", 24, 16] <= 4 < n_plain  # the frame, one token (a 2-token match needs it), drafts
    assert forwards["right", 24, 4] < forwards["wrong", 24, 4] == forwards["none", 24, 4] == n_plain
    assert forwards["right", 24, 4] < forwards["partly right", 24, 4] < n_plain
    assert Drafter([7, 8, 99, 9], stop_id=99).draft([7, 8]) == []  # stops before <image>
    assert Drafter([7, 8, 9, 99, 5], stop_id=99).draft([7, 8]) == [9]
    assert lookup.DRAFT_MAX <= lookup.LOOKAHEAD_MAX < fused_decode.MAX_ROWS  # a verify forward stays fused


def test_drafter_copies_what_followed_the_latest_match():
    from proassist_ros.model.lookup import Drafter

    hist = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8]
    assert Drafter(hist, k=2).draft([2, 3]) == [7, 8]       # the latest "2 3", not the first
    assert Drafter(hist, k=6).draft([4, 5]) == [9, 2, 3, 7, 8, 4]  # … into the reply itself
    assert Drafter(hist, k=6).draft([8, 42]) == []          # nothing matches
    assert Drafter(hist, k=0).draft([2, 3]) == []
    assert Drafter(hist, k=3, ngram_max=3).draft([9, 2, 3]) == [7, 8, 9]  # the longest suffix first
    assert Drafter([5, 6, 1], k=3).draft([5, 6]) == [1, 5, 6]  # 2-token suffix "5 6"
    assert Drafter([9, 6, 1], k=3).draft([5, 6]) == []      # one token alone ("6") is not enough…
    assert Drafter([9, 6, 1], k=3, ngram_min=1).draft([5, 6]) == [1, 5, 6]  # …unless asked for
    assert Drafter([], k=3).draft([5, 6, 7, 5, 6]) == [7, 5, 6]  # the reply's own repeats
