"""The block-growing KV cache (model/kv_cache.py) holds what transformers' DynamicCache holds.

Streaming, Drop-Middle, cropping and cloning on a tiny LLM give the same logits with both caches,
across block boundaries (GROW_BLOCK is patched small so the test crosses many)."""

from __future__ import annotations

import torch
from transformers import DynamicCache

import proassist_ros.model.kv_cache as kv
from proassist_ros.model import StreamState, drop_middle, forward_chunk, load
from proassist_ros.model.testing import random_frames


def _run(model, cache_factory):
    """Stream 24 frames (with two teacher-forced replies), crop once, drop the middle once, then
    branch a clone; return every logit row, the final length and each layer's key tensor."""
    chat = model.chat
    feats = model.embed_frames(random_frames(24, seed=3))
    state = StreamState(cache_factory(model.llm.config))
    rows = []
    for k in range(24):
        ids = (chat.bos_ids() + chat.message_ids("system", "Be helpful.") if k == 0 else []) + chat.image_ids(1)
        rows.append(forward_chunk(model, state, ids, feats[k]))
        if k in (5, 17):
            rows.append(forward_chunk(model, state, chat.message_ids("assistant", f"Step {k} is done.")))
        if k == 8:  # cut back as the engine does when a reply turns out empty
            length = state.num_tokens - 3
            for layer in state.cache.layers:
                layer.keys, layer.values = layer.keys[..., :length, :], layer.values[..., :length, :]
            state.num_tokens = length
        if k == 12:
            drop_middle(state, keep_prefix=10, keep_last=20)
    branch = state.clone()
    rows.append(forward_chunk(model, branch, chat.image_ids(1), feats[0]))
    rows.append(forward_chunk(model, state, chat.image_ids(1), feats[1]))
    return torch.cat(rows), state.num_tokens, [layer.keys.clone() for layer in state.cache.layers]


def test_growing_cache_equals_dynamic_cache(monkeypatch):
    monkeypatch.setattr(kv, "GROW_BLOCK", 4)
    model = load("tiny", seed=1)
    ref, n_ref, keys_ref = _run(model, lambda cfg: DynamicCache(config=cfg))
    got, n_got, keys_got = _run(model, kv.new_kv_cache)
    assert n_got == n_ref and all(k.shape[-2] == n_ref for k in keys_got)
    assert torch.allclose(got, ref, atol=1e-5, rtol=0), (got - ref).abs().max()
    assert all(torch.equal(a, b) for a, b in zip(keys_got, keys_ref))


def test_growing_layer_reuses_its_buffer(monkeypatch):
    """Appending within the spare room writes in place (no copy of the cached part)."""
    monkeypatch.setattr(kv, "GROW_BLOCK", 8)
    layer = kv.GrowingLayer()
    k = torch.randn(1, 2, 3, 4)
    layer.update(k, k)
    first = layer.keys.data_ptr()
    for _ in range(8):
        layer.update(torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))
    assert layer.keys.data_ptr() == first and layer.get_seq_length() == 11
    layer.update(torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))  # past the spare room: grows
    assert layer.get_seq_length() == 12 and torch.equal(layer.keys[..., :3, :], k)
