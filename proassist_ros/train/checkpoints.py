"""Training checkpoints (resume) and the final exports, all without pickle.

``out/checkpoint-{step}/``: ``trainable.safetensors`` (LoRA + projector, fp32),
``optimizer.safetensors`` + ``optimizer.json`` (AdamW moments as tensors, the rest as JSON),
``scheduler.json``, ``rng-{rank}.safetensors`` (each rank's torch RNG: LoRA dropout), and
``state.json`` (step, run fingerprint) written last — a directory without it is incomplete and
ignored. Nothing is ever unpickled, so a checkpoint from elsewhere cannot run code.

Exports: ``out/model/`` — LoRA merged, the project's checkpoint format (``load(out/"model")``);
``out/adapter/`` — only what training changed (LoRA A/B in PEFT key names + projector, fp16),
small enough to ship; ``apply_adapter`` puts it onto a base model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from proassist_ros.model.adapter import ADAPTER_FORMAT, apply_adapter  # noqa: F401  (re-exported)
from proassist_ros.model.safetensors_io import load_safetensors

from .layout import TRAINED_LAYOUT

STATE = "state.json"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``out``, oldest first."""
    found = []
    for d in Path(out).glob("checkpoint-*"):
        if (d / STATE).is_file() and d.name.split("-", 1)[1].isdigit():
            found.append((int(d.name.split("-", 1)[1]), d))
    return sorted(found)


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta["state"].setdefault(str(pid), {})[k] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, extra in meta["state"].items():
        state.setdefault(int(pid), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        out.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return out


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(acc, out: Path, step: int, model, optimizer, scheduler, run: dict,
                    keep: int) -> Path:
    """Write checkpoint-{step} (collective: every rank calls it)."""
    final = Path(out) / f"checkpoint-{step}"
    tmp = Path(out) / f".checkpoint-{step}.partial"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    save_file(rng_state(), str(tmp / f"rng-{acc.process_index}.safetensors"))
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(meta))
        (tmp / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
        (tmp / STATE).write_text(json.dumps({"step": step, "run": run}, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for _, old in checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def check_run(saved: dict, run: dict, where: Path) -> None:
    """Resuming with different data, model or schedule would not continue the same run."""
    bad = [f"{k}: checkpoint {saved.get(k)!r} vs now {run.get(k)!r}"
           for k in sorted(set(saved) | set(run)) if saved.get(k) != run.get(k)]
    if bad:
        raise ValueError(f"cannot resume from {where}: the run differs — " + "; ".join(bad))


def load_checkpoint(acc, ckpt: Path, model, optimizer, scheduler, run: dict) -> int:
    """Restore everything ``save_checkpoint`` wrote; returns the step to continue from."""
    state = json.loads((ckpt / STATE).read_text())
    check_run(state["run"], run, ckpt)
    weights = load_safetensors(ckpt / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing or set(weights) - set(params):
        raise KeyError(f"{ckpt}: trainable tensors differ from the model (missing {missing[:3]}, "
                       f"unexpected {sorted(set(weights) - set(params))[:3]})")
    with torch.no_grad():
        for n, v in weights.items():
            params[n].copy_(v.to(params[n].device, params[n].dtype))
    meta = json.loads((ckpt / "optimizer.json").read_text())
    optimizer.load_state_dict(_unflatten_optimizer(load_safetensors(ckpt / "optimizer.safetensors"), meta))
    scheduler.load_state_dict(json.loads((ckpt / "scheduler.json").read_text()))
    rng = ckpt / f"rng-{acc.process_index}.safetensors"
    if not rng.is_file():
        raise FileNotFoundError(f"{ckpt}: missing {rng.name} (saved with fewer processes?)")
    set_rng_state(load_safetensors(rng))
    return int(state["step"])


def export_adapter(model, out: Path, info: dict) -> Path:
    """LoRA A/B (PEFT names, as a released adapter) + projector, fp16, and their settings —
    with the layout the adapter was trained on (``train.layout.TRAINED_LAYOUT``) among them."""
    from peft import get_peft_model_state_dict

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).cpu().contiguous()
               for k, v in get_peft_model_state_dict(model.llm, save_embedding_layers=False).items()}
    tensors.update({f"mm_projector.{k}": v.detach().to(torch.float16).cpu().contiguous()
                    for k, v in model.mm_projector.state_dict().items()})
    save_file(tensors, str(out / "adapter.safetensors"), metadata={"format": ADAPTER_FORMAT})
    settings = {"format": ADAPTER_FORMAT, **info, **TRAINED_LAYOUT}
    (out / "adapter_config.json").write_text(json.dumps(settings, indent=1))
    return out
