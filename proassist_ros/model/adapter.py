"""A stage-2 adapter on disk (``adapter.safetensors`` + ``adapter_config.json``), and merging it.

What training changed, and nothing else: the LoRA A/B matrices under PEFT's key names (as in a
released ProAssist adapter) and the projector as ``mm_projector.*``, in fp16. ``train/`` writes
it (``export_adapter``); the shipped embedded model is one (``model/embedded.py``). Merging
(W ← W + α/r·B·A) leaves a plain model: no PEFT wrapper and no LoRA cost at inference.
"""

from __future__ import annotations

import json
from pathlib import Path

from proassist_ros.model.safetensors_io import load_safetensors

ADAPTER_FORMAT = "proassist_ros.adapter/1"
ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter.safetensors", "adapter_config.json"


def read_adapter_config(adapter_dir: str | Path) -> dict:
    d = Path(adapter_dir)
    for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d}: missing {name} (not a proassist adapter directory)")
    info = json.loads((d / ADAPTER_CONFIG).read_text())
    if info.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{d}: format {info.get('format')!r}, expected {ADAPTER_FORMAT!r}")
    return info


def apply_adapter(model, adapter_dir: str | Path):
    """Merge an adapter directory into ``model`` (LoRA merged into the LLM; projector replaced)."""
    from proassist_ros.model.lora import merge_adapter_weights

    d = Path(adapter_dir)
    info = read_adapter_config(d)
    if info["tokens_per_frame"] != model.config.tokens_per_frame:
        raise ValueError(f"{d}: adapter for I={info['tokens_per_frame']}, model has "
                         f"I={model.config.tokens_per_frame}")
    tensors = load_safetensors(str(d / ADAPTER_WEIGHTS))
    proj = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("mm_projector.")}
    lora = {k: v for k, v in tensors.items() if not k.startswith("mm_projector.")}
    merge_adapter_weights(model.llm, lora, float(info["lora_alpha"]), source=str(d))
    ref = model.mm_projector.state_dict()
    if set(proj) != set(ref):
        raise KeyError(f"{d}: projector keys {sorted(proj)} differ from the model's {sorted(ref)}")
    model.mm_projector.load_state_dict({k: v.to(ref[k].device, ref[k].dtype) for k, v in proj.items()})
    return model
