"""One LLM forward for the frame chunks of several streams (many wearers, one model).

Why: a silent frame step at batch 1 reads every weight of the LLM for a handful of tokens
(decoding on CPU is memory-bound, docs/performance.md). Several streams' chunks in one forward
read the weights once, so N wearers cost much less than N separate forwards.

Each stream keeps its own KV cache (``StreamState``, any length). Position ids continue each
stream's own count (``state.num_tokens``, as ``forward_chunk`` does), so RoPE rotates every new
key exactly as in a stream run alone. Only the last position's logits of each chunk are computed
(the decision reads nothing else), on the rows' final hidden states. Two layouts:

- **Packed** (CPU inference, model/decode.py's lean forward): the chunks are concatenated along
  the sequence, (1, ΣT, D). Norms, projections and the MLP are row-wise, so they run once for all
  rows with no padding; each stream's attention runs over its own cache, which it updates in
  place. Nothing is copied or masked beyond what a stream alone does.
- **Padded** (anything else: a GPU, a hooked LLM): the caches are laid side by side in a padded
  batch cache for transformers' decoder; the mask lets each row see only its own history and the
  causal part of its own chunk, and afterwards each row's new keys and values are appended to its
  own cache:

      cache positions of row i:  [0, past_i) its history | [past_i, P) padding | [P, P + T) new chunk
      P = max past_i, T = max chunk length; chunks are right-padded, padded keys are masked out.

The result equals ``forward_chunk`` per stream up to float rounding of the batched products
(test/test_batched_sessions.py compares the decisions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from proassist_ros.model import decode as lean_forward
from proassist_ros.model.kv_cache import new_kv_cache
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.streaming import StreamState


def _padded_past(config, states: Sequence[StreamState], width: int, like: torch.Tensor) -> DynamicCache:
    """A batch cache whose row i holds stream i's keys/values in [0, past_i), zeros after."""
    cache = DynamicCache(config=config)
    for layer_idx, layer in enumerate(cache.layers):
        keys = values = None
        for i, s in enumerate(states):
            if s.cache is None or s.num_tokens == 0:
                continue
            src = s.cache.layers[layer_idx]
            if keys is None:
                shape = (len(states), src.keys.shape[1], width, src.keys.shape[-1])  # (N, H_kv, P, D)
                keys, values = like.new_zeros(shape, dtype=src.keys.dtype), like.new_zeros(shape, dtype=src.keys.dtype)
            keys[i, :, : s.num_tokens] = src.keys[0]
            values[i, :, : s.num_tokens] = src.values[0]
        if keys is not None:
            layer.update(keys, values)
    return cache


def _last_hidden_packed(model: ProAssistModel, states: Sequence[StreamState], embeds: list[torch.Tensor],
                        past: list[int]) -> torch.Tensor:
    """The lean CPU path (model/decode.py): chunks packed along the sequence, each stream's
    attention over its own cache, which it updates in place → last rows (N, D)."""
    lens = [e.shape[0] for e in embeds]
    x = torch.cat(embeds)[None]  # (1, ΣT, D)
    positions = torch.cat([torch.arange(t, device=x.device) + p for t, p in zip(lens, past)])[None]  # (1, ΣT)
    for s in states:
        if s.cache is None:
            s.cache = new_kv_cache(model.llm.config)
    out = lean_forward.hidden(model.llm, x, [s.cache for s in states], lens, positions)  # (1, ΣT, D)
    return out[0, torch.tensor(lens, device=x.device).cumsum(0) - 1]


def _last_hidden_padded(model: ProAssistModel, states: Sequence[StreamState], embeds: list[torch.Tensor],
                        past: list[int]) -> torch.Tensor:
    """transformers' decoder on a padded batch (the module doc's layout), then each row's new
    keys/values appended to its stream's cache → last rows (N, D)."""
    dev = model.device
    n, lens = len(embeds), [e.shape[0] for e in embeds]
    t_max, p_max = max(lens), max(past)
    x = embeds[0].new_zeros((n, t_max, embeds[0].shape[-1]))  # (N, T, D), right-padded
    for i, e in enumerate(embeds):
        x[i, : lens[i]] = e
    steps = torch.arange(t_max, device=dev)
    positions = torch.stack([steps + p for p in past])  # (N, T)
    # mask (N, 1, T, P + T): True where query t of row i may look at key j
    keys = torch.arange(p_max + t_max, device=dev)
    hist = keys[None, :] < torch.tensor(past, device=dev)[:, None]  # (N, P + T)
    new = keys - p_max  # index within the new chunk (negative for history slots)
    own = (new[None, None, :] >= 0) & (new[None, None, :] <= steps[None, :, None]) \
        & (new[None, None, :] < torch.tensor(lens, device=dev)[:, None, None])  # (N, T, P + T)
    mask = (hist[:, None, :] | own)[:, None]  # (N, 1, T, P + T)

    config = model.llm.config
    cache = _padded_past(config, states, p_max, x)
    out = model.llm.get_decoder()(inputs_embeds=x, attention_mask=mask, position_ids=positions, cache=cache,
                                  use_cache=True).last_hidden_state  # (N, T, D)
    for i, s in enumerate(states):
        if s.cache is None:
            s.cache = new_kv_cache(config)
        for layer_idx, layer in enumerate(cache.layers):  # the batch cache, updated in place
            k = layer.keys[i : i + 1, :, p_max : p_max + lens[i]]
            v = layer.values[i : i + 1, :, p_max : p_max + lens[i]]
            s.cache.layers[layer_idx].update(k, v)
    return out[torch.arange(n, device=dev), torch.tensor(lens, device=dev) - 1]


@torch.no_grad()
def forward_chunks_batched(
    model: ProAssistModel,
    states: Sequence[StreamState],
    chunks: Sequence[tuple[Sequence[int], torch.Tensor | None]],
) -> list[torch.Tensor]:
    """Append chunk i (token ids, frame features for its ``<image>`` slots) to stream i's cache,
    all in one forward; return each chunk's last-position logits, fp32 (V,)."""
    if len(states) != len(chunks) or not chunks:
        raise ValueError(f"{len(states)} streams for {len(chunks)} chunks")
    if any(not ids for ids, _ in chunks):
        raise ValueError("every stream needs a non-empty chunk")
    dev = model.device
    embeds = [model.embed_tokens(torch.as_tensor(list(ids), dtype=torch.long, device=dev), feats)
              for ids, feats in chunks]  # each (T_i, D)
    past = [s.num_tokens for s in states]
    if lean_forward.supported(model.llm, embeds[0]):  # CPU inference: packed, no padding, less Python
        last = _last_hidden_packed(model, states, embeds, past)
    else:
        last = _last_hidden_padded(model, states, embeds, past)
    logits = model.llm.get_output_embeddings()(last).float()  # (N, V)
    for s, (ids, feats) in zip(states, chunks):
        s.advance(list(ids), feats)  # as forward_chunk books it: length, drafting history, log
    return list(logits)
