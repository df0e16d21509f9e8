"""Load a released ProAssist directory (``594zyc/ProAssist-Model-L4096-I{1,5,10}``; spec §7.2–7.4).

Such a directory holds no base weights, only::

    config.json                 ProActLlamaConfig: Llama keys + ProAct keys (use_img_cls_token,
                                img_patch_token_size, llm_pretrained, vision_pretrained, ...)
    adapter_config.json         PEFT LoRA config (r, lora_alpha, ...)
    adapter_model.safetensors   base_model.model.model.layers.{i}.*.lora_{A,B}.weight,
                                base_model.model.lm_head.lora_{A,B}.weight,
                                base_model.model.mm_projector.{0,2}.{weight,bias}
    [adapter_N/ ...]            earlier adapters, merged first in numeric order

The base LLM (Llama-3.1-8B-Instruct) and the SigLIP tower (siglip-so400m-patch14-384) come from
local HF directories given as ``llm_path=`` / ``vision_path=`` (safetensors only; the hub ids in
config.json are accepted only if they name existing local directories). The LoRA deltas are
merged by hand in fp32 (W += α/r · B·A) and cast back; the tokenizer is the base LLM's plus
``<image>``. The file listing and key names follow the PEFT convention and are UNVERIFIED
against the real release (tested only on a miniature fixture in that layout).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from proassist_ros.model.assemble import build_model
from proassist_ros.model.config import ProAssistConfig, patch_grid_for
from proassist_ros.model.lora import merge_adapter_weights
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.safetensors_io import load_safetensors
from proassist_ros.model.tokenizer import detect_chat_format, from_local

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROJECTOR_PREFIX = "base_model.model.mm_projector."
CHAT_FORMATTERS = {"LLaMA3MultimodalChat": "llama3"}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}")
    return json.loads(path.read_text())


def _local_dir(given: str | Path | None, config: dict[str, Any], key: str, what: str) -> Path:
    candidate = given if given is not None else config.get(key)
    if candidate is None:
        raise FileNotFoundError(f"no {what}: pass {key.replace('_pretrained', '_path')}= (a local HF directory)")
    path = Path(candidate).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what} {str(candidate)!r} is not a local directory; pass "
            f"{key.replace('_pretrained', '_path')}= pointing at a downloaded copy (no hub access)"
        )
    return path


def _safetensors_files(path: Path) -> list[Path]:
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: missing shard(s) {missing}")
        return [path / s for s in shards]
    raise FileNotFoundError(f"{path}: missing model.safetensors (or model.safetensors.index.json); safetensors only")


def load_llm(path: Path, dtype: torch.dtype | None) -> torch.nn.Module:
    """Base Llama-architecture LLM from a local HF directory (safetensors only, sdpa)."""
    from transformers import LlamaForCausalLM

    _read_json(path / "config.json")
    _safetensors_files(path)
    return LlamaForCausalLM.from_pretrained(
        str(path), local_files_only=True, use_safetensors=True, attn_implementation="sdpa",
        dtype=dtype or torch.float32,
    ).eval()


def load_vision(path: Path, dtype: torch.dtype | None) -> torch.nn.Module:
    """SigLIP vision tower from a local dir of a full ``SiglipModel`` or a ``SiglipVisionModel``."""
    from accelerate import init_empty_weights
    from transformers import SiglipVisionConfig, SiglipVisionModel

    cfg = _read_json(path / "config.json")
    vcfg = cfg.get("vision_config", cfg) if cfg.get("model_type") == "siglip" else cfg
    if cfg.get("model_type") not in ("siglip", "siglip_vision_model"):
        raise ValueError(f"{path}/config.json: model_type {cfg.get('model_type')!r} is not a SigLIP model")
    vconfig = SiglipVisionConfig(**{k: v for k, v in vcfg.items() if k not in ("transformers_version", "model_type")})
    vconfig._attn_implementation = "sdpa"
    raw: dict[str, torch.Tensor] = {}
    for f in _safetensors_files(path):
        raw.update(load_safetensors(str(f)))
    # Full SiglipModel checkpoints (and transformers-4 vision-only ones) prefix the tower with
    # "vision_model."; transformers 5's SiglipVisionModel has no such level.
    prefix = "vision_model."
    if any(k.startswith(prefix) for k in raw):
        state = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
    else:
        state = raw
    with init_empty_weights(include_buffers=False):
        tower = SiglipVisionModel(vconfig)
    expected = set(tower.state_dict())
    missing = sorted(expected - state.keys())
    if missing:
        raise KeyError(f"{path}: SigLIP vision weights missing keys {missing[:6]}")
    tower.load_state_dict({k: state[k] for k in expected}, strict=True, assign=True)
    return tower.to(dtype or torch.float32).eval()


def tokens_per_frame_of(config: dict[str, Any]) -> int:
    """I = int(use_img_cls_token) + img_patch_token_size² (spec §1.2)."""
    n = int(config.get("img_patch_token_size") or 0)
    return int(bool(config.get("use_img_cls_token", True))) + n * n


def _adapter_dirs(path: Path) -> list[Path]:
    subs = [p for p in path.iterdir() if p.is_dir() and re.fullmatch(r"adapter_\d+", p.name)]
    subs.sort(key=lambda p: int(p.name.split("_")[1]))
    return subs + ([path] if (path / ADAPTER_CONFIG).is_file() else [])


def _read_adapter(d: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    cfg = _read_json(d / ADAPTER_CONFIG)
    weights = d / ADAPTER_WEIGHTS
    if not weights.is_file():
        bin_hint = " (adapter_model.bin is not loaded: safetensors only)" if (d / "adapter_model.bin").exists() else ""
        raise FileNotFoundError(f"missing {weights}{bin_hint}")
    for flag in ("use_rslora", "use_dora"):
        if cfg.get(flag):
            raise ValueError(f"{d / ADAPTER_CONFIG}: {flag}=true is not supported (plain LoRA only)")
    for pattern in ("rank_pattern", "alpha_pattern"):
        if cfg.get(pattern):
            raise ValueError(f"{d / ADAPTER_CONFIG}: per-module {pattern} is not supported")
    if "lora_alpha" not in cfg:
        raise KeyError(f"{d / ADAPTER_CONFIG}: missing key lora_alpha")
    return cfg, load_safetensors(str(weights))


@torch.no_grad()
def _load_full_weights(llm: torch.nn.Module, full: dict[str, torch.Tensor], source: str) -> None:
    """Plain weights saved next to the LoRA deltas, loaded into the base model first (as PEFT does).

    PEFT writes e.g. ``base_model.model.lm_head.base_layer.weight`` when ``lm_head`` is a LoRA
    target ("save_embedding_layers"); a key that names no LLM parameter is an error.
    """
    params = dict(llm.named_parameters())
    for key, value in full.items():
        name = key.removeprefix("base_model.model.").replace(".base_layer.", ".")
        if name not in params:
            raise KeyError(f"{source}: unsupported key {key!r} (no LLM parameter {name!r})")
        if params[name].shape != value.shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, the LLM {tuple(params[name].shape)}")
        if name == "lm_head.weight" and params[name] is llm.get_input_embeddings().weight:
            llm.get_output_embeddings().weight = torch.nn.Parameter(value.clone().to(params[name].dtype))
            llm.config.tie_word_embeddings = False
            params = dict(llm.named_parameters())
            continue
        params[name].copy_(value.to(params[name].dtype))


def load_released(
    path: str | Path,
    *,
    llm_path: str | Path | None = None,
    vision_path: str | Path | None = None,
    tokens_per_frame: int | None = None,
    dtype: torch.dtype | None = None,
) -> ProAssistModel:
    """Base LLM + SigLIP + merged adapter(s) + projector from a released ProAssist directory."""
    root = Path(path)
    pcfg = _read_json(root / "config.json")
    I = tokens_per_frame_of(pcfg)  # noqa: E741 - the paper's name
    if tokens_per_frame is not None and tokens_per_frame != I:
        raise ValueError(
            f"{root}: checkpoint has I={I} (img_patch_token_size), but tokens_per_frame={tokens_per_frame}"
        )
    patch_grid_for(I)
    if pcfg.get("img_sep_token") not in (None, "", "none"):
        raise ValueError(f"{root}: img_sep_token={pcfg['img_sep_token']!r}: only NOSEP checkpoints are supported")
    adapters = _adapter_dirs(root)
    if not adapters:
        raise FileNotFoundError(
            f"{root}: missing {ADAPTER_CONFIG} (a released ProAssist directory holds a LoRA adapter)"
        )

    llm_dir = _local_dir(llm_path, pcfg, "llm_pretrained", "base LLM")
    vision_dir = _local_dir(vision_path, pcfg, "vision_pretrained", "SigLIP model")
    tok = from_local(llm_dir)
    chat_format = CHAT_FORMATTERS.get(pcfg.get("chat_formatter_cls", ""), None) or detect_chat_format(tok)
    llm = load_llm(llm_dir, dtype)
    vision = load_vision(vision_dir, dtype)
    img_id = tok.convert_tokens_to_ids("<image>")
    if pcfg.get("img_token_id") not in (None, img_id):
        raise ValueError(f"{root}: config img_token_id={pcfg['img_token_id']} but the tokenizer gives {img_id}")

    config = ProAssistConfig(
        name=root.name,
        chat_format=chat_format,
        tokens_per_frame=I,
        image_size=int(vision.config.image_size),
        vision_hidden_size=int(vision.config.hidden_size),
        llm_hidden_size=int(llm.config.hidden_size),
        untrained=False,
        source=f"released ProAssist {root} + LLM {llm_dir} + SigLIP {vision_dir}",
        llm=llm.config.to_dict(),
        vision=vision.config.to_dict(),
    )
    model = build_model(config, tok, seed=None, llm=llm, vision=vision)

    projector: dict[str, torch.Tensor] = {}
    for d in adapters:
        acfg, weights = _read_adapter(d)
        source = str(d / ADAPTER_WEIGHTS)
        lora = {k: v for k, v in weights.items() if ".lora_" in k}
        proj = {k[len(PROJECTOR_PREFIX) :]: v for k, v in weights.items() if k.startswith(PROJECTOR_PREFIX)}
        full = {k: v for k, v in weights.items() if k not in lora and not k.startswith(PROJECTOR_PREFIX)}
        _load_full_weights(model.llm, full, source)
        merged = merge_adapter_weights(model.llm, lora, float(acfg["lora_alpha"]), source=source)
        log.info("merged %d LoRA modules from %s", len(merged), d)
        projector.update(proj)
    want = {"0.weight", "0.bias", "2.weight", "2.bias"}
    if set(projector) != want:
        missing = sorted(f"{PROJECTOR_PREFIX}{k}" for k in want - set(projector))
        raise KeyError(f"{root / ADAPTER_WEIGHTS}: missing projector key(s) {missing}")
    model.mm_projector.load_state_dict(projector, strict=True)
    if dtype is not None:
        model.mm_projector.to(dtype)
    # A merge may have untied the LM head: keep the stored config in sync.
    model.config = dataclasses.replace(model.config, llm=model.llm.config.to_dict())
    return model.eval()
