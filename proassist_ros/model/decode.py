"""A lean Llama forward for the stream's chunks on CPU: the same arithmetic, fewer Python layers.

Why: on CPU a reply token or a silent frame's chunk is a handful of positions, and after int8
(model/quantize.py) transformers' generic forward costs about as much as the products: per layer
~13 module calls, decorators, keyword plumbing, mask creation, an attention-interface lookup and
~40 small ops, ~2 µs each (docs/performance.md "Lean forward"). This walks the same modules of a
``LlamaForCausalLM`` in the same order with the same ops: RMSNorm as ``F.rms_norm`` (bit-identical
to ``LlamaRMSNorm`` in fp32), RoPE from the model's ``rotary_emb`` and transformers'
``apply_rotary_pos_emb``, the cache's own ``update``, SDPA with grouped heads (``repeat_kv``
under a mask), the model's own projections (int8, LoRA-merged or plain) and head.
A test compares logits and cache with transformers' forward, chunk by chunk.

Used by ``streaming.forward_chunk`` (one stream) and ``batched.forward_chunks_batched`` (several
streams' chunks packed along the sequence) when ``supported`` says so: inference (no autograd), fp32 on
CPU, a plain ``LlamaForCausalLM`` without forward hooks. Anything else (training, a GPU in half
precision, another architecture, a hooked LLM) keeps transformers' forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

from proassist_ros.model import fused_decode


def supported(llm, embeds: torch.Tensor) -> bool:
    """Whether ``forward`` serves this call (see the module doc). An LLM with forward hooks (an
    observer such as eval/agreement.py) takes transformers' forward, so the hooks see every call."""
    return (not torch.is_grad_enabled() and embeds.device.type == "cpu" and embeds.dtype == torch.float32
            and type(llm) is LlamaForCausalLM and llm.config._attn_implementation in ("sdpa", "eager")
            and not (llm._forward_hooks or llm._forward_pre_hooks))


def _rms(x: torch.Tensor, norm) -> torch.Tensor:
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)


def _attend(attn, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """One stream's attention: q (1, H, T, hd) are the last T of the L cached positions (keys,
    values (1, Hkv, L, hd)), causal within the chunk → (1, H, T, hd)."""
    t = q.shape[-2]
    if t == 1:  # one query sees every cached position: no mask
        return F.scaled_dot_product_attention(q, keys, values, scale=attn.scaling, enable_gqa=True)
    n = keys.shape[-2]
    mask = torch.arange(n)[None, :] <= torch.arange(n - t, n)[:, None]  # (T, L)
    rep = attn.num_key_value_groups
    return F.scaled_dot_product_attention(q, repeat_kv(keys, rep), repeat_kv(values, rep), attn_mask=mask,
                                          scale=attn.scaling)


def hidden(llm: LlamaForCausalLM, embeds: torch.Tensor, caches: list, lens: list[int],
           positions: torch.Tensor) -> torch.Tensor:
    """The decoder's final (normed) hidden states, as ``llm.model(...)`` gives them, for the chunks
    of one or more streams packed along the sequence: embeds (1, ΣT, D), positions (1, ΣT), chunk
    ``i`` being the next ``lens[i]`` rows and appended to ``caches[i]`` (updated in place)
    → (1, ΣT, D).

    Why packed: norms, projections and the MLP are row-wise, so several streams' chunks share one
    product per weight (read once, model/batched.py) with no padding; only the attention is per
    stream, over that stream's own cache, exactly as when it runs alone."""
    model = llm.model
    t = embeds.shape[1]
    if t <= fused_decode.MAX_ROWS and (plan := fused_decode.plan(llm)) is not None:
        x = fused_decode.rows(llm, plan, embeds, caches, lens, positions)  # an int8 LLM: one C call, all layers
        if x is not None:
            return _rms(x, model.norm)
    cos, sin = model.rotary_emb(embeds, positions)  # (1, ΣT, head_dim) each
    x = embeds
    for i, layer in enumerate(model.layers):
        attn, mlp = layer.self_attn, layer.mlp
        h = _rms(x, layer.input_layernorm)
        q = attn.q_proj(h).view(1, t, -1, attn.head_dim).transpose(1, 2)  # (1, H, ΣT, hd)
        k = attn.k_proj(h).view(1, t, -1, attn.head_dim).transpose(1, 2)  # (1, Hkv, ΣT, hd)
        v = attn.v_proj(h).view(1, t, -1, attn.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)  # transformers' own RoPE
        if len(caches) == 1:
            o = _attend(attn, q, *caches[0].update(k, v, i))
        else:
            o = torch.cat([_attend(attn, qs, *cache.update(ks, vs, i)) for cache, qs, ks, vs in
                           zip(caches, q.split(lens, 2), k.split(lens, 2), v.split(lens, 2))], 2)
        x = x + attn.o_proj(o.transpose(1, 2).reshape(1, t, -1))
        h = _rms(x, layer.post_attention_layernorm)
        x = x + mlp.down_proj(mlp.act_fn(mlp.gate_proj(h)) * mlp.up_proj(h))
    return _rms(x, model.norm)


def forward(llm: LlamaForCausalLM, embeds: torch.Tensor, cache, positions: torch.Tensor,
            keep: torch.Tensor | None = None) -> torch.Tensor:
    """``llm(inputs_embeds=embeds, cache=cache, position_ids=positions, logits_to_keep=keep).logits``:
    embeds (1, T, D), positions (1, T), keep (K,) row indices or None (all) → logits (1, K or T, V).
    The cache is updated in place, as transformers' forward does."""
    x = hidden(llm, embeds, [cache], [embeds.shape[1]], positions)
    if keep is not None:
        x = x[:, keep]
    return llm.lm_head(x)


def logits(llm, embeds: torch.Tensor, cache, positions: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The chunk's logits (1, K or T, V) by the path inference takes: this module's (and for a
    short chunk of an int8 LLM, model/fused_decode.py's) where ``supported``, else transformers'
    forward. ``streaming.forward_chunk`` and eval/agreement.py's shadow model both call this, so
    the agreement measures what the node runs."""
    if supported(llm, embeds):
        return forward(llm, embeds, cache, positions, keep)
    extra = {} if keep is None else {"logits_to_keep": keep}
    return llm(inputs_embeds=embeds, cache=cache, position_ids=positions, use_cache=True, **extra).logits
