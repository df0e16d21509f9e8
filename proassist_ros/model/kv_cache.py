"""The stream's KV cache: transformers' ``DynamicCache`` with layers that grow in blocks.

Why: ``DynamicLayer.update`` appends with ``torch.cat``, which copies the whole layer cache for
every new token. At 800 cached tokens that is 60 copies of ~0.6 MB per reply token on
SmolLM2-135M, ~10 ms of a ~65 ms token on the 2-core machine (docs/performance.md, "reply
token"). ``GrowingLayer`` keeps a buffer with spare room (``GROW_BLOCK`` positions) and writes new
keys/values into it; ``keys``/``values`` are views of the filled part, so the attention sees
exactly the tensors ``DynamicLayer`` would hold (same values, same order): decisions do not
change, only the copying does.

Code that edits a cache by assigning ``layer.keys = ...`` (drop-middle, cropping before a reply,
transformers' own ``crop``/``reorder_cache``) keeps working: an assigned tensor becomes the new
buffer, and the next update grows it again.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

GROW_BLOCK = 256  # spare positions allocated at a time: ≤ 256 × 2 × layers × kv-heads × head_dim floats


class _Growing:
    """One growing tensor ``[B, H, capacity, D]`` of which the first ``n`` positions are filled."""

    __slots__ = ("buf", "n")

    def __init__(self, t: torch.Tensor | None) -> None:
        self.buf, self.n = t, (0 if t is None or t.dim() < 3 else t.shape[-2])

    def view(self) -> torch.Tensor | None:
        if self.buf is None or self.buf.dim() < 3:
            return self.buf
        return self.buf[..., : self.n, :]

    def reserve(self, t: int) -> torch.Tensor | None:
        """The buffer, contiguous, with room for ``t`` more positions after the first ``n`` (grown
        when short); None while nothing has been appended (the shape is not known yet). Writers
        that fill the room themselves (model/fused_decode.py) then advance ``n``."""
        if self.buf is None or self.buf.dim() < 3 or self.buf.numel() == 0:
            return None
        if self.n + t > self.buf.shape[-2] or not self.buf.is_contiguous():
            grown = self.buf.new_empty((*self.buf.shape[:-2], self.n + t + GROW_BLOCK, self.buf.shape[-1]))
            grown[..., : self.n, :] = self.buf[..., : self.n, :]
            self.buf = grown
        return self.buf

    def append(self, new: torch.Tensor) -> torch.Tensor:
        t = new.shape[-2]
        if self.reserve(t) is None:
            self.buf = new.new_empty((*new.shape[:-2], t + GROW_BLOCK, new.shape[-1]))
            self.n = 0
        self.buf[..., self.n : self.n + t, :] = new
        self.n += t
        return self.view()


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``update`` writes into spare room instead of concatenating."""

    def __init__(self, **kwargs) -> None:
        self._k, self._v = _Growing(None), _Growing(None)
        super().__init__(**kwargs)

    keys = property(lambda self: self._k.view(), lambda self, t: setattr(self, "_k", _Growing(t)))
    values = property(lambda self: self._v.view(), lambda self, t: setattr(self, "_v", _Growing(t)))

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` positions; the room after them is reused by the next update."""
        self._k.n, self._v.n = min(self._k.n, length), min(self._v.n, length)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        return self._k.append(key_states), self._v.append(value_states)


def new_kv_cache(config) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose plain (full-attention) layers grow in blocks."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
