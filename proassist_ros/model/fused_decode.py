"""A reply token or a frame's chunk through all decoder layers in one native call (``csrc/decode_layer.c``).

Why: with the int8 kernel (model/int8_kernel.py) and the lean forward (model/decode.py), a reply
token on 2 cores still spent ~12 ms of its ~30 ms between the products: two RMSNorms, RoPE, the
cache append, SDPA, SiLU and the residual adds per layer, each a torch op of a few µs, and ~13
Python calls (docs/performance.md "Fused decode"). The C routine runs a whole token in one call:
the products as the int8 kernel does them, the rest as loops over a few hundred floats, and the
attention reading each cached key and value once for the query heads that share it.

When: chunks of at most ``MAX_ROWS`` positions in all (a reply token, a frame, a short turn; or
several wearers' frames packed by model/batched.py), CPU inference, an int8 LLM
(``quantize: int8``) whose decoder layers are all plain Llama layers — ``Int8Linear`` projections
without bias, SiLU, RMSNorm — with the native kernel built, and a cache of ``GrowingLayer``s
(model/kv_cache.py) already holding each stream. ``plan`` says whether it applies; otherwise the
lean forward serves, with the same results up to float rounding (the test compares them).
``PROASSIST_INT8_KERNEL=torch`` turns it off with the native kernel, ``enable(False)`` alone.

Threads: the plan (the weights' addresses) is built once and only read; every call builds its own
table of cache buffers. ctypes releases the GIL during the call, so a summary in the background
(engine/summary_job.py) and the next frame's decision run at once, each on its own cache. (A
first version kept one shared table and rewrote it per call: under background IPS two calls
wrote into each other's caches and corrupted the heap; a test now runs two streams in threads.)
"""

from __future__ import annotations

import ctypes

import torch

from proassist_ros.model import int8_kernel
from proassist_ros.model.kv_cache import GrowingLayer
from proassist_ros.model.quantize import PACKED_MAX_ROWS, Int8Linear

MAX_ROWS = PACKED_MAX_ROWS  # longer chunks (prompts): the lean forward, whose products use MKL's GEMM
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # csrc's WQ .. WD
_ATTR = "_proassist_fused_plan"  # the plan, kept on the LLM module (built once per model)
_enabled = [True]


class _Weights(ctypes.Structure):
    """``proassist_weights`` of csrc/decode_layer.c: one layer's norms and int8 projections."""

    _fields_ = [("ln1", ctypes.c_void_p), ("ln2", ctypes.c_void_p),
                ("w", ctypes.c_void_p * 7), ("s", ctypes.c_void_p * 7)]


class _KV(ctypes.Structure):
    """``proassist_kv``: one stream's cache buffers of one layer."""

    _fields_ = [("kbuf", ctypes.c_void_p), ("vbuf", ctypes.c_void_p), ("cap", ctypes.c_int64), ("n", ctypes.c_int64)]


class _Plan:
    """The weights' addresses per layer and the model's shapes, for every call with this LLM."""

    def __init__(self, llm) -> None:
        cfg, layers = llm.config, llm.model.layers
        attn = layers[0].self_attn
        self.dims = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, attn.head_dim,
                     cfg.intermediate_size)
        self.eps, self.scaling = float(layers[0].input_layernorm.variance_epsilon), float(attn.scaling)
        self.weights = (_Weights * len(layers))()
        self.address = ctypes.addressof(self.weights)
        self.tensors: list[torch.Tensor] = []  # every tensor whose address is in the table, kept alive with it
        for st, layer in zip(self.weights, layers):
            mods = [_projection(layer, name) for name in PROJECTIONS]
            norms = (layer.input_layernorm.weight, layer.post_attention_layernorm.weight)
            st.ln1, st.ln2 = (w.data_ptr() for w in norms)
            self.tensors.extend(norms)
            for j, m in enumerate(mods):
                st.w[j], st.s[j] = m.qweight.data_ptr(), m.scale.data_ptr()
                self.tensors.extend((m.qweight, m.scale))


def _projection(layer, name: str):
    return getattr(layer.self_attn if name in PROJECTIONS[:4] else layer.mlp, name, None)


def _fits(llm) -> bool:
    """Every decoder layer is a plain Llama layer with int8 projections the C routine can read."""
    cfg = llm.config
    if getattr(cfg, "hidden_act", None) != "silu" or getattr(cfg, "attention_bias", False) or getattr(
            cfg, "mlp_bias", False) or cfg.num_attention_heads % cfg.num_key_value_heads:
        return False
    for layer in llm.model.layers:
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            w = getattr(norm, "weight", None)
            if w is None or w.dtype != torch.float32 or not w.is_contiguous() or not hasattr(norm, "variance_epsilon"):
                return False
        for p in PROJECTIONS:
            m = _projection(layer, p)
            if type(m) is not Int8Linear or m.bias is not None or not m.qweight.is_contiguous():
                return False
    return True


def enable(flag: bool) -> None:
    """Turn the fused step on or off in this process (the benchmark's A/B)."""
    _enabled[0] = bool(flag)


def plan(llm) -> _Plan | None:
    """This LLM's plan, or None where the fused step does not apply (see the module doc)."""
    if not _enabled[0] or int8_kernel.decode_rows_fn() is None:
        return None
    got = llm.__dict__.get(_ATTR)
    if got is None:
        got = _Plan(llm) if _fits(llm) else False
        llm.__dict__[_ATTR] = got
    return got or None


def _buffers(layer, t: int, hkv: int, hd: int) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """A cache layer's key and value buffers with room for ``t`` more positions, and its length;
    None when it is not a layer the C routine can append to."""
    if type(layer) is not GrowingLayer or not layer.is_initialized or layer._k.n != layer._v.n:
        return None
    kb, vb = layer._k.reserve(t), layer._v.reserve(t)
    if kb is None or vb is None or kb.dtype != torch.float32 or kb.shape != vb.shape or kb.shape[0] != 1 \
            or kb.shape[1] != hkv or kb.shape[-1] != hd:
        return None
    return kb, vb, layer._k.n


def rows(llm, p: _Plan, embeds: torch.Tensor, caches: list, lens: list[int],
         positions: torch.Tensor) -> torch.Tensor | None:
    """The last hidden states before the final norm, (1, ΣT, D), of the chunks of one or more
    streams packed along the sequence (as ``decode.hidden`` takes them): embeds (1, ΣT, D) with
    ΣT ≤ ``MAX_ROWS``, chunk ``i`` being the next ``lens[i]`` rows, appended to ``caches[i]``;
    positions (1, ΣT). None (nothing changed) when a cache is not one the C routine can append to."""
    d, h, hkv, hd, inter = p.dims
    t, n_layers = embeds.shape[1], len(p.weights)
    kv = (_KV * (len(caches) * n_layers))()
    for s, (cache, n_rows) in enumerate(zip(caches, lens)):
        if len(cache.layers) != n_layers:
            return None
        for i, layer in enumerate(cache.layers):
            got = _buffers(layer, n_rows, hkv, hd)
            if got is None:
                return None
            kb, vb, n = got
            kv[s * n_layers + i] = _KV(kb.data_ptr(), vb.data_ptr(), kb.shape[-2], n)
    cos, sin = (c.reshape(t, hd).contiguous() for c in llm.model.rotary_emb(embeds, positions))  # (ΣT, hd) each
    x = embeds.reshape(t, d).contiguous().clone()  # the C routine updates it in place
    counts = (ctypes.c_int64 * len(lens))(*lens)
    fn = int8_kernel.decode_rows_fn()
    if fn(x.data_ptr(), t, p.address, n_layers, ctypes.addressof(kv), len(caches), ctypes.addressof(counts), d, h,
          hkv, hd, inter, p.eps, p.scaling, cos.data_ptr(), sin.data_ptr()):
        raise MemoryError("fused decode: could not allocate its scratch buffer")
    for cache, n_rows in zip(caches, lens):
        for layer in cache.layers:
            layer._k.n += n_rows
            layer._v.n += n_rows
    return x.view(1, t, d)
