"""Stage 1: pretrain a SigLIP-architecture vision tower on world frames and their captions.

The paper freezes a pretrained SigLIP-SO400M; none exists offline here, so we make a small one
the way SigLIP was made: an image tower and a text tower trained with the pairwise sigmoid loss
(``siglip.py``). The image embedding is the tower's ``pooler_output`` (the MAP head), which is
exactly ProAssist's frame token 1, so the token the LLM sees at I = 1 is the one trained.

The text side reads each frame's caption split into its phrases (``targets="phrases"``, default:
"a glass (full of water)", "the hand is reaching for the jug") or the whole caption
(``"captions"``). Phrases put the loss on the facts that change within a video — a state word in
a ~70-word caption barely moves a whole-caption embedding — and a phrase shared by two frames
is a positive for both, as are identical captions. Batches hold 8 frames from each of 8 videos,
so the negatives include the same objects in other states.

Output (``out_dir``): ``tower.safetensors`` (the ``SiglipVisionModel`` state dict, key names as
in ``ProAssistModel.vision``), ``vision_config.json``, ``train_log.jsonl``, ``vision_eval.json``,
plus ``text_tower.safetensors``/``text_vocab.json`` (only for evaluation), ``checkpoints/`` and
``cache/`` (frames). See docs/vision_pretraining.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from proassist_ros.constants import DEFAULT_PATCH_STEM
from proassist_ros.model.safetensors_io import load_safetensors
from proassist_ros.model.tower import (
    CONFIG_FILE,
    TOWER_FILE,
    VISION_FIELDS,
    load_tower_into,
    read_tower_config,
    tower_overrides,
)
from proassist_ros.model.vision import config_stem
from proassist_ros.train.siglip import SiglipPair, TowerSettings, caption_labels, sigmoid_loss, target_labels
from proassist_ros.train.vision_ckpt import checkpoint_root, latest_checkpoint, load_checkpoint, save_checkpoint
from proassist_ros.train.vision_data import (
    CaptionVocab,
    FrameSet,
    augment,
    cache_frames,
    text_targets,
    to_pixels,
)
from proassist_ros.train.vision_facts import (
    FactHeads,
    FactVocab,
    draw_batch_near,
    evaluate_heads,
    fact_losses,
    frame_facts,
    parse_weights,
)

__all__ = ["PRESETS", "SiglipPair", "TowerSettings", "caption_labels", "draw_batch", "load_pair", "load_tower_into",
           "pretrain_tower", "read_tower_config", "sigmoid_loss", "target_labels", "tower_overrides"]

PRESETS: dict[str, dict[str, Any]] = {
    # ~30 min on 2 shared CPU cores (docs/vision_pretraining.md has the measurements).
    "default": dict(image_size=128, patch_size=16, hidden=256, layers=4, heads=4, steps=1000, batch=64,
                    per_video=8, lr=3e-4, bias_init=-2.0, fps=1.0, ckpt_every=50),
    # seconds: for tests and for checking a setup end to end.
    "smoke": dict(image_size=32, patch_size=8, hidden=32, layers=2, heads=2, steps=12, batch=16,
                  per_video=8, lr=3e-3, bias_init=-2.0, fps=1.0, ckpt_every=4),
    # v2: the default tower (same shape, I = 1) + the world's facts as extra targets (vision_facts.py),
    # frames at the node's 2 FPS (both frames of a completion's second), half of each video's frames
    # from around step ends. docs/vision_pretraining.md, "v2".
    "v2": dict(image_size=128, patch_size=16, hidden=256, layers=4, heads=4, steps=1000, batch=64,
               per_video=8, lr=3e-4, bias_init=-2.0, fps=2.0, ckpt_every=50, facts=True, near_frac=0.5,
               fact_weights=None),
    # v5: v2 with a convolutional stem (model/vision.ConvStem), started from a finished default
    # tower (``--init-tower``: all but the stem), the completion and hand heads weighted up, 1 200
    # steps at 5e-4. The probe's (b) pair AUC .850 (v2: .681). docs/vision_pretraining.md, "v5".
    "v5": dict(image_size=128, patch_size=16, hidden=256, layers=4, heads=4, steps=1200, batch=64,
               per_video=8, lr=5e-4, bias_init=-2.0, fps=2.0, ckpt_every=50, facts=True, near_frac=0.5,
               fact_weights="completed=3,hand=10", patch_stem="conv"),
}
FACT_DEFAULTS = dict(facts=False, near_frac=0.5, fact_weights=None)  # presets that do not say
LOGIT_LR_SCALE = 10.0  # t' and b learn at this multiple of the tower's rate: short runs, small batches
TEXT_FILE, VOCAB_FILE, EVAL_FILE, LOG_FILE = ("text_tower.safetensors", "text_vocab.json", "vision_eval.json",
                                            "train_log.jsonl")
HEADS_FILE, HEADS_VOCAB_FILE = "fact_heads.safetensors", "fact_vocab.json"  # v2 only; not needed after stage 1
EVAL_REFERENCE = 4000  # training frames the cross-video check searches


def _lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to 10 %."""
    warm = max(1, total // 20)
    if step < warm:
        return base * (step + 1) / warm
    prog = (step - warm) / max(1, total - warm)
    return base * (0.1 + 0.45 * (1 + math.cos(math.pi * prog)))


def _optimizer(pair: SiglipPair, lr: float, logit_lr_scale: float) -> torch.optim.AdamW:
    """AdamW; no weight decay on norms, biases, t' and b; t' and b at ``logit_lr_scale`` × lr."""
    logit = [pair.logit_scale, pair.logit_bias]
    decay = [p for p in pair.parameters() if p.ndim >= 2]
    rest = [p for p in pair.parameters() if p.ndim < 2 and all(p is not q for q in logit)]
    groups = [{"params": decay, "weight_decay": 0.05, "lr_scale": 1.0},
              {"params": rest, "weight_decay": 0.0, "lr_scale": 1.0},
              {"params": logit, "weight_decay": 0.0, "lr_scale": logit_lr_scale}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def draw_batch(rng: np.random.Generator, groups: Sequence[np.ndarray], batch: int, per_video: int) -> np.ndarray:
    """``batch`` frame indices: ``per_video`` frames from each of ``batch / per_video`` random videos.

    Frames of one video differ only in a few objects' states and the hands' action: those are the
    hard negatives that teach the tower the state cues the assistant needs. Frames of other videos
    (other objects, colours, tables) are the easy ones. Uniform sampling from 40+ videos puts
    hardly two frames of one video in a batch.
    """
    out: list[int] = []
    for g in rng.permutation(len(groups)):
        take = min(per_video, len(groups[g]), batch - len(out))
        out.extend(int(i) for i in rng.choice(groups[g], take, replace=False))
        if len(out) == batch:
            break
    return np.sort(np.array(out))


def _train_step(pair: SiglipPair, opt: torch.optim.Optimizer, data: FrameSet, groups: Sequence[np.ndarray],
                step: int, run: dict, device: torch.device, aux: dict | None = None) -> dict:
    """One step. ``aux`` (v2): {"facts", "near", "vocab", "weights"} adds the fact heads' losses."""
    tr = run["train"]
    rng = np.random.default_rng([tr["seed"], step])
    if aux is None:
        idx = draw_batch(rng, groups, tr["batch"], tr["per_video"])
    else:
        idx = draw_batch_near(rng, groups, aux["near"], tr["batch"], tr["per_video"], run["aux"]["near_frac"])
    pixels = to_pixels(data.frames[idx])
    if tr["augment"]:
        pixels = augment(pixels, torch.Generator().manual_seed(int(rng.integers(2**62))))
    targets = [text_targets(data.captions[i], tr["targets"]) for i in idx]
    texts = list(dict.fromkeys(t for ts in targets for t in ts))
    lr = _lr_at(step, tr["steps"], tr["lr"])
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_scale"]
    emb = pair.embed_images(pixels.to(device))
    w_siglip = 1.0 if aux is None else aux["weights"].get("siglip", 1.0)
    siglip = sigmoid_loss(emb, pair.embed_texts(texts), target_labels(targets, texts).to(device), pair.logit_scale,
                          pair.logit_bias) if w_siglip else emb.sum() * 0.0
    loss, parts = siglip, {}
    if aux is not None:
        tgt = {k: v.to(device) for k, v in aux["vocab"].targets(aux["facts"], idx).items()}
        parts = fact_losses(pair.aux(emb), tgt)
        loss = w_siglip * siglip + sum(aux["weights"][k] * v for k, v in parts.items())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(pair.parameters(), 1.0)
    opt.step()
    rec = {"step": step + 1, "loss": round(loss.item(), 6), "lr": lr,
           "t": round(pair.logit_scale.detach().exp().item(), 4), "b": round(pair.logit_bias.item(), 4),
           "texts": len(texts)}
    if parts:
        rec.update(siglip=round(siglip.item(), 6), **{f"loss_{k}": round(v.item(), 6) for k, v in parts.items()})
    return rec


STEM_PREFIX = "embeddings.patch_embedding."  # the patch embedding, or a ConvStem's layers


def _init_vision(pair: SiglipPair, tower_dir: Path) -> None:
    """Start the image tower from a finished tower's weights (any dtype), refusing another shape.
    A tower with the other ``patch_stem`` gives everything but the stem, which starts at random
    (e.g. the shipped patch tower under a new conv stem, as docs/vision_pretraining.md's check)."""
    cfg = read_tower_config(tower_dir)
    have = pair.vision.config.to_dict()
    bad = [f"{k}: {cfg['siglip_vision_config'].get(k)!r} vs {have.get(k)!r}" for k in VISION_FIELDS
           if k != "patch_stem" and cfg["siglip_vision_config"].get(k) != have.get(k)]
    if bad:
        raise ValueError(f"{tower_dir}: cannot start from this tower: " + "; ".join(bad))
    same_stem = config_stem(cfg["siglip_vision_config"]) == config_stem(have)
    ref = pair.vision.state_dict()
    state = {k: v for k, v in load_safetensors(str(tower_dir / TOWER_FILE)).items()
             if same_stem or not k.startswith(STEM_PREFIX)}
    missing, unexpected = pair.vision.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()}, strict=False)
    if unexpected or any(same_stem or not k.startswith(STEM_PREFIX) for k in missing):
        raise KeyError(f"{tower_dir}: tower keys differ: missing {missing[:5]}, unexpected {unexpected[:5]}")


RESUME_DEFAULTS = {"patch_stem": DEFAULT_PATCH_STEM}  # settings that checkpoints written before them do not carry


def _check_resume(saved: dict, run: dict, ckpt: Path) -> None:
    def was(sec: str, k: str) -> object:
        return saved.get(sec, {}).get(k, RESUME_DEFAULTS.get(k) if sec == "settings" else None)

    bad = [f"{sec}.{k}: checkpoint {was(sec, k)!r} vs now {v!r}"
           for sec in ("settings", "train", "data", "aux") for k, v in run.get(sec, {}).items() if was(sec, k) != v]
    if "aux" in saved and "aux" not in run:
        bad.append("the checkpoint was trained with fact heads (v2), this run without")
    if saved.get("vocab") != run["vocab"]:
        bad.append("the caption vocabulary differs (other bags?)")
    if bad:
        raise ValueError(f"cannot resume from {ckpt}: " + "; ".join(bad) + " (pass resume=False to start over)")


def _split(data: FrameSet, val, cache: Path, image_size: int, fps: float, progress: bool):
    """Training frame indices and held-out frames: ``val`` bags, else the last 10 % of the videos."""
    if val is not None:
        return np.arange(len(data)), cache_frames(val, cache, image_size, fps, progress=progress), "val bags"
    videos = sorted(set(data.videos))
    if len(videos) < 2:
        return np.arange(len(data)), None, "none"
    held = set(videos[-max(1, len(videos) // 10):])
    keep = np.array([v not in held for v in data.videos])
    return np.flatnonzero(keep), data.subset(np.flatnonzero(~keep)), f"held out of the training bags: {sorted(held)}"


def pretrain_tower(bags_or_dirs, out_dir: str | Path, *, val=None, preset: str = "default",
                   image_size: int | None = None, patch_size: int | None = None, hidden: int | None = None,
                   layers: int | None = None, heads: int | None = None, intermediate: int | None = None,
                   steps: int | None = None, batch: int | None = None, per_video: int | None = None,
                   lr: float | None = None, bias_init: float | None = None, seed: int = 0, targets: str = "phrases",
                   resume: bool = True, fps: float | None = None, ckpt_every: int | None = None,
                   stop_after: int | None = None, augment_frames: bool = True, evaluate: bool = True,
                   cache_dir: str | Path | None = None, device: str = "cpu", progress: bool = True,
                   facts: bool | None = None, near_frac: float | None = None,
                   fact_weights: str | dict | None = None, init_tower: str | Path | None = None,
                   patch_stem: str | None = None) -> Path:
    """Train the tower pair on the captioned frames of ``bags_or_dirs``; returns ``out_dir``.

    Resumes from the newest checkpoint in ``out_dir`` (unless ``resume=False``) after checking the
    settings, data and vocabulary are the same. ``stop_after=k`` stops after step k (a checkpoint
    is written there) so a long run can be done in slices on a shared machine. ``cache_dir``
    (default ``out_dir/cache``) holds the preprocessed frames; runs on the same bags can share it.

    ``facts=True`` (the ``v2`` preset) adds the world's facts as targets of linear heads on the
    frame token (``vision_facts.py``): weights per target from ``fact_weights`` ("completed=5,step=1"),
    ``near_frac`` of each video's frames in a batch drawn from around step ends. The heads are saved
    as ``fact_heads.safetensors`` and are not part of the tower. ``init_tower`` (a finished stage-1
    directory, or the embedded model's ``model/weights/embedded``) starts the image tower from its
    weights instead of at random (same architecture required); the text tower starts fresh.
    ``patch_stem="conv"``: a convolutional stem instead of the patch embedding (model/vision.ConvStem).
    """
    from tqdm import tqdm

    from proassist_ros.train.vision_eval import evaluate_tower

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} ({' | '.join(PRESETS)})")
    given = dict(image_size=image_size, patch_size=patch_size, hidden=hidden, layers=layers, heads=heads,
                 steps=steps, batch=batch, per_video=per_video, lr=lr, bias_init=bias_init, fps=fps,
                 ckpt_every=ckpt_every)
    given.update(facts=facts, near_frac=near_frac, fact_weights=fact_weights)
    p = {**FACT_DEFAULTS, **PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
    settings = TowerSettings(p["image_size"], p["patch_size"], p["hidden"], p["layers"], p["heads"], intermediate or 0,
                             patch_stem=patch_stem or p.get("patch_stem", DEFAULT_PATCH_STEM))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    data = cache_frames(bags_or_dirs, cache, settings.image_size, p["fps"], progress=progress)
    train_idx, val_data, val_source = _split(data, val, cache, settings.image_size, p["fps"], progress)
    vocab = CaptionVocab.build([t for c in {data.captions[i] for i in train_idx} for t in text_targets(c, targets)])
    run = {"settings": dataclasses.asdict(settings), "vocab": vocab.to_dict(),
           "train": {"steps": p["steps"], "batch": p["batch"], "per_video": p["per_video"], "lr": p["lr"],
                     "bias_init": p["bias_init"],
                     "targets": targets, "logit_lr_scale": LOGIT_LR_SCALE, "seed": seed,
                     "augment": augment_frames, **({"init_tower": str(init_tower)} if init_tower else {})},
           "data": {"fps": p["fps"], "frames": len(train_idx), "videos": len({data.videos[i] for i in train_idx}),
                    "distinct_captions": len({data.captions[i] for i in train_idx}),
                    "skipped_uncaptioned": data.skipped}}
    videos = np.asarray(data.videos)[train_idx]
    groups = [train_idx[videos == v] for v in sorted(set(videos.tolist()))]
    aux = None
    if p["facts"]:
        ff = frame_facts(bags_or_dirs, data, cache, progress=progress)
        fvocab = FactVocab.build(ff.subset(train_idx))
        weights = parse_weights(p["fact_weights"])
        aux = {"facts": ff, "vocab": fvocab, "weights": weights,
               "near": [g[ff.near[g]] for g in groups]}
        run["aux"] = {"weights": weights, "near_frac": float(p["near_frac"]), "window_s": 1.0,
                      "vocab": fvocab.to_dict(),
                      "completed_frames": int((ff.completed[train_idx] > 0).sum()),
                      "near_frames": int(ff.near[train_idx].sum())}
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pair = SiglipPair(settings, vocab, targets, bias_init=p["bias_init"]).to(dev)
        if aux is not None:
            pair.aux = FactHeads(settings.hidden, aux["vocab"]).to(dev)
    if init_tower is not None:
        _init_vision(pair, Path(init_tower))
    opt = _optimizer(pair, p["lr"], run["train"]["logit_lr_scale"])
    if not resume:  # start over: an older run's checkpoints must never be picked up later
        shutil.rmtree(checkpoint_root(out), ignore_errors=True)
    ckpt = latest_checkpoint(out)
    start = 0
    if ckpt is not None:
        _check_resume(json.loads((ckpt / "state.json").read_text()), run, ckpt)  # before the weights: names why
        saved = load_checkpoint(ckpt, pair, opt)
        start = int(saved["step"])
    log_path = out / LOG_FILE
    old = log_path.read_text().splitlines() if ckpt is not None and log_path.is_file() else []
    log_path.write_text("".join(f"{ln}\n" for ln in old if json.loads(ln)["step"] <= start))
    end = min(p["steps"], stop_after) if stop_after else p["steps"]
    bar = tqdm(range(start, end), initial=start, total=p["steps"], desc="stage 1: vision tower", unit="step",
               disable=not progress)
    with log_path.open("a") as logf:
        for step in bar:
            t0 = time.perf_counter()
            rec = _train_step(pair, opt, data, groups, step, run, dev, aux)
            rec["ms"] = round(1000 * (time.perf_counter() - t0), 1)
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            bar.set_postfix(loss=f"{rec['loss']:.3f}", t=rec["t"], b=rec["b"],
                            **({"compl": f"{rec['loss_completed']:.3f}"} if aux is not None else {}))
            if (step + 1) % p["ckpt_every"] == 0 or step + 1 == end:
                save_checkpoint(out, step + 1, pair, opt, run)
    if end < p["steps"]:
        return out
    pair.eval()
    save_file({k: v.detach().cpu().contiguous() for k, v in pair.vision.state_dict().items()}, str(out / TOWER_FILE))
    save_file({k: v.detach().cpu().contiguous() for k, v in pair.state_dict().items()
               if not k.startswith(("vision.", "aux."))}, str(out / TEXT_FILE))
    if aux is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in pair.aux.state_dict().items()}, str(out / HEADS_FILE))
        (out / HEADS_VOCAB_FILE).write_text(json.dumps(aux["vocab"].to_dict()))
    (out / VOCAB_FILE).write_text(json.dumps(vocab.to_dict()))
    (out / CONFIG_FILE).write_text(json.dumps({
        "image_size": settings.image_size, "patch_size": settings.patch_size, "hidden": settings.hidden,
        "layers": settings.layers, "heads": settings.heads, "intermediate": settings.intermediate,
        "siglip_vision_config": {k: v for k, v in settings.vision_config().to_dict().items() if k in VISION_FIELDS},
        "text": {"hidden": settings.text_hidden, "layers": settings.text_layers, "vocab": len(vocab)},
        "train": run["train"], "data": run["data"], "val": val_source,
        **({"fact_heads": {k: v for k, v in run["aux"].items() if k != "vocab"}} if aux is not None else {})},
        indent=1))
    if evaluate:
        ref = data.subset(np.sort(np.random.default_rng(seed).choice(train_idx, min(EVAL_REFERENCE, len(train_idx)),
                                                                    replace=False)))
        result = evaluate_tower(pair, val_data, reference=ref, seed=seed) if val_data is not None else {
            "skipped": "no held-out frames (a single training video and no val bags)"}
        if aux is not None and val_data is not None:
            result["fact_heads"] = _evaluate_heads(pair, aux["vocab"], val_data, val, bags_or_dirs, cache, progress)
        (out / EVAL_FILE).write_text(json.dumps({"val": val_source, **result}, indent=1))
    return out


def _evaluate_heads(pair: SiglipPair, vocab: FactVocab, val_data: FrameSet, val, train_bags, cache: Path,
                    progress: bool) -> dict:
    """The fact heads on the held-out frames (val bags, or the held-out training videos)."""
    from proassist_ros.train.vision_eval import image_features

    try:
        facts = frame_facts(val if val is not None else train_bags, val_data, cache, progress=progress)
    except ValueError as exc:
        return {"skipped": str(exc)}
    feats = image_features(pair.vision, val_data.frames)  # (N, D) on the CPU
    return {**evaluate_heads(pair.aux.cpu(), vocab, feats, facts),
            "note": "the trained heads' own scores on held-out frames (not probes)"}


def load_pair(tower_dir: str | Path) -> SiglipPair:
    """The trained tower pair of a finished run (e.g. to evaluate it on other frames)."""
    d = Path(tower_dir)
    cfg = read_tower_config(d)
    vocab = CaptionVocab.from_dict(json.loads((d / VOCAB_FILE).read_text()))
    settings = TowerSettings(cfg["image_size"], cfg["patch_size"], cfg["hidden"], cfg["layers"], cfg["heads"],
                             cfg["intermediate"], cfg["text"]["hidden"], cfg["text"]["layers"],
                             config_stem(cfg["siglip_vision_config"]))
    pair = SiglipPair(settings, vocab, cfg["train"]["targets"])
    state = {f"vision.{k}": v for k, v in load_safetensors(str(d / TOWER_FILE)).items()}
    pair.load_state_dict({**state, **load_safetensors(str(d / TEXT_FILE))}, strict=True)
    return pair.eval()
