"""Building a run: the model (base weights, trained tower, fresh LoRA) and the data sets."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .config import TrainConfig
from .data import FPS, Bag, TrainSet, cached_features, compute_features, make_samples, read_bags
from .sequence import SequenceConfig

log = logging.getLogger(__name__)


def _untie_head(llm) -> None:
    """LoRA on a tied LM head: give the head its own weight first. PEFT's merge would otherwise
    add the head's delta to the input embedding as well (they are one tensor)."""
    emb = llm.get_input_embeddings()
    if llm.lm_head.weight is emb.weight:
        llm.lm_head.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=False)
        llm.config.tie_word_embeddings = False


def build_model(cfg: TrainConfig):
    """``load`` the base, put the trained tower in, add a fresh LoRA; returns (model, base info)."""
    from proassist_ros.model import LoraSettings, add_lora, load
    from proassist_ros.model.loader import spec_kind

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    spec = cfg.base or cfg.model
    kind = spec_kind(spec)
    if kind == "missing":
        raise FileNotFoundError(f"model {spec!r} is neither 'tiny', 'embedded' nor a checkpoint "
                                "directory (proassist_config.json) or released ProAssist directory")
    kw = dict(cfg.model_overrides)
    if cfg.tokens_per_frame and kind in ("tiny", "embedded", "released"):
        kw["tokens_per_frame"] = cfg.tokens_per_frame
    if kind == "released":
        if not (cfg.llm_path and cfg.vision_path):
            raise ValueError(f"{spec} is a released ProAssist directory: give --llm-path (its base "
                             "LLM) and --vision-path (its SigLIP) as local directories")
        kw.update(llm_path=cfg.llm_path, vision_path=cfg.vision_path)
    if kind == "embedded":
        # --model embedded: SmolLM2 + a tower (--tower's, else the shipped one), random projector,
        # no LoRA; --base embedded: the shipped model (tower, projector, LoRA merged) — fine-tuning.
        if cfg.tower:
            from proassist_ros.model.tower import tower_overrides

            kw.update(tower_overrides(cfg.tower), weights="random")
        elif not cfg.base:
            kw["weights"] = "tower"
    model = load(spec, **kw)
    if cfg.tower:
        from .vision import load_tower_into

        load_tower_into(model, cfg.tower)
    if cfg.tokens_per_frame and model.config.tokens_per_frame != cfg.tokens_per_frame:
        raise ValueError(f"{spec} has I={model.config.tokens_per_frame} tokens per frame, "
                         f"--tokens-per-frame asks for {cfg.tokens_per_frame}")
    info = {"spec": str(spec), "kind": kind, "source": model.config.source,
            "untrained": bool(model.config.untrained)}
    if cfg.lora_lm_head:
        _untie_head(model.llm)
    add_lora(model, LoraSettings(r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                 lm_head=cfg.lora_lm_head), seed=cfg.seed)
    if cfg.gradient_checkpointing:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, info


def model_info(cfg: TrainConfig, model, base: dict) -> dict:
    """What the exports say about themselves. A random tower (no ``--tower`` on an untrained base)
    keeps the model marked untrained: its frames carry little of the scene. (The embedded base
    without ``--tower`` has the shipped, trained tower.)"""
    untrained = bool(base["untrained"] and not cfg.tower and base["kind"] != "embedded")
    source = (f"proassist train: LoRA r={cfg.lora_r} α={cfg.lora_alpha:g} + projector, {cfg.steps} "
              f"steps; base: {base['source']}" + (f"; tower: {cfg.tower}" if cfg.tower else ""))
    return {"base": base["spec"], "base_kind": base["kind"], "source": source, "untrained": untrained,
            "tokens_per_frame": model.config.tokens_per_frame, "chat_format": model.config.chat_format,
            "lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_lm_head": cfg.lora_lm_head,
            "lora_targets": str(model.llm.peft_config["default"].target_modules),
            "tower": cfg.tower, "context_limit": cfg.context_limit, "reserve": cfg.reserve,
            "system_prompt": cfg.system_prompt}


def _features(cfg: TrainConfig, model, bags: list[Bag], acc, progress: bool) -> dict:
    if not cfg.feature_cache:
        with torch.no_grad():
            return {b.episode.meta.video_id: compute_features(model, b.episode, b.t0_ns) for b in bags}
    cache = Path(cfg.features or Path(cfg.out) / "features")
    if acc.is_main_process:
        cached_features(model, bags, cache, extract=True, progress=progress)
    acc.wait_for_everyone()
    return cached_features(model, bags, cache, extract=False)


def build_sets(cfg: TrainConfig, model, acc, progress: bool = True) -> tuple[TrainSet, TrainSet | None]:
    seq = SequenceConfig(system_prompt=cfg.system_prompt, context_limit=cfg.context_limit,
                         reserve=cfg.reserve, fps=FPS,
                         summary_at_every_reference=cfg.summary_at_every_reference)
    sets = []
    for paths, rho in ((cfg.data, cfg.nfs_rho), (cfg.val, 1.0)):
        if not paths:
            sets.append(None)
            continue
        bags = read_bags(paths)
        feats = _features(cfg, model, bags, acc, progress and acc.is_main_process)
        samples = make_samples(bags, feats, model.chat, seq, knowledge_mix=cfg.knowledge_mix,
                               seed=cfg.seed)
        sets.append(TrainSet(samples, feats, tokens_per_frame=model.config.tokens_per_frame,
                             rho=rho, seed=cfg.seed))
        if acc.is_main_process:
            log.info("%d bags → %d samples, %d tokens", len(bags), len(samples), sets[-1].tokens())
    return sets[0], sets[1]
