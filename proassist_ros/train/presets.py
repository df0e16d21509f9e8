"""Presets: defaults for a kind of run; explicit options override them.

- ``smoke``: the tiny random model, a handful of steps — seconds; for tests and for checking a
  setup end to end (its output is not a useful assistant).
- ``default``: the shipped embedded model (SmolLM2-135M-Instruct, I = 1, L = 1024 so IPS
  triggers in long videos), sized for ≲ 1 h on 2 CPU cores (docs/training.md, "Sizing").
- ``gpu``: the same recipe with the paper's batch dynamics on one GPU (bf16, accumulation).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(model="tiny", steps=12, lr=1e-2, projector_lr=1e-2, warmup=2, lora_r=4,
                  lora_alpha=8.0, lora_dropout=0.0, context_limit=512, reserve=64, save_every=6,
                  feature_cache=False, threads=1),
    # ~5.4 CPU-s per step (mean sequence ~660 tokens); 500 steps ≈ 45 min on one free core.
    # One thread: on a shared 2-core box two OpenMP threads spin against other jobs (4–8× slower).
    "default": dict(model="embedded", steps=500, lr=3e-4, projector_lr=1e-3, warmup=25, lora_r=16,
                    lora_alpha=32.0, lora_dropout=0.05, context_limit=1024, reserve=128,
                    save_every=50, eval_every=100, threads=1),
    "gpu": dict(model="embedded", steps=2000, lr=2e-4, projector_lr=1e-3, warmup=100, lora_r=64,
                lora_alpha=128.0, grad_accum=8, context_limit=1024, reserve=128, save_every=200,
                eval_every=200, mixed_precision="bf16"),
}


def preset(name: str) -> dict[str, Any]:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (one of {', '.join(PRESETS)})") from None
