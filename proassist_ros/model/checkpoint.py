"""Own checkpoint format: a directory that rebuilds a ``ProAssistModel`` bit-exactly.

Layout::

    proassist_config.json   ProAssistConfig (architecture, I, chat format, nested LLM/SigLIP configs)
    model.safetensors       full state dict: llm.*, vision.*, mm_projector.* (tied LM head stored once)
    tokenizer.json, tokenizer_config.json, ...   the tokenizer, <image> included

Weights are stored in the model's dtype; LoRA must be merged before saving (``merge_lora``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from safetensors.torch import save_model

from proassist_ros.model.assemble import build_model, load_state
from proassist_ros.model.config import CONFIG_NAME, ProAssistConfig
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.safetensors_io import load_safetensors
from proassist_ros.model.tokenizer import add_image_token

WEIGHTS_NAME = "model.safetensors"


def save(model: ProAssistModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed) in the own checkpoint format."""
    from peft import PeftModel

    if isinstance(model.llm, PeftModel):
        raise ValueError("merge the LoRA adapter (merge_lora) before saving a checkpoint")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # The LLM config may have changed since building (e.g. a LoRA merge untied the LM head).
    model.config = dataclasses.replace(model.config, llm=model.llm.config.to_dict())
    save_model(model, str(out / WEIGHTS_NAME), metadata={"format": "pt", "proassist": "1"})
    model.tokenizer.save_pretrained(str(out))
    model.config.save(out)
    return out


def load_checkpoint(directory: str | Path) -> ProAssistModel:
    """Rebuild a model saved by ``save`` (weights assigned as stored: no re-init, no casting)."""
    from transformers import AutoTokenizer

    d = Path(directory)
    for name in (CONFIG_NAME, WEIGHTS_NAME, "tokenizer_config.json"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"checkpoint {d}: missing {name}")
    config = ProAssistConfig.load(d)
    tok = add_image_token(AutoTokenizer.from_pretrained(str(d), local_files_only=True))
    model = build_model(config, tok, empty=True)
    state = {f"{k}": v for k, v in load_safetensors(str(d / WEIGHTS_NAME)).items()}
    load_state(model, state, source=str(d / WEIGHTS_NAME))
    return model.eval()
