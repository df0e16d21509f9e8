"""Stage-1 checkpoints: safetensors weights + optimizer moments, a JSON state, atomic directories.

A checkpoint is ``checkpoints/step_NNNNNN/`` holding ``weights.safetensors`` (the SigLIP pair:
``vision.*``, ``text.*``, ``logit_scale``, ``logit_bias``), ``optimizer.safetensors`` (AdamW's
per-parameter tensors) and ``state.json`` (step, settings, vocabulary, AdamW's param groups). It is
written to a hidden directory and renamed, so a crash never leaves a half checkpoint that a resume
would pick up. Nothing else is needed to resume exactly: batches and augmentation are drawn from
generators seeded by (seed, step), not from a running RNG.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from proassist_ros.model.safetensors_io import load_safetensors

KEEP = 2  # checkpoints kept on disk (the newest ones)


def checkpoint_root(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    root = checkpoint_root(out_dir)
    done = sorted(p for p in root.glob("step_*") if (p / "state.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def save_checkpoint(out_dir: Path, step: int, module: nn.Module, opt: torch.optim.Optimizer, state: dict) -> Path:
    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".step_{step:06d}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(tmp / "weights.safetensors"))
    sd = opt.state_dict()
    moments = {f"{i}.{k}": v.contiguous() for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    save_file(moments, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "param_groups": sd["param_groups"]}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(root.glob("step_*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, module: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Restore ``module`` and ``opt`` from ``path``; returns its state.json."""
    state = json.loads((path / "state.json").read_text())
    weights = load_safetensors(str(path / "weights.safetensors"))
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise KeyError(f"{path}: checkpoint does not match the model: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]}")
    per_param: dict[int, dict] = {}
    for key, v in load_safetensors(str(path / "optimizer.safetensors")).items():
        i, name = key.split(".", 1)
        per_param.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
    return state
