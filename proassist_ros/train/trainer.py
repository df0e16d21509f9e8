"""Stage 2 trainer: LoRA on the LLM + the projector, on frozen-tower frame features (spec §4).

Runs under HF ``accelerate``: one process on a CPU, ``torchrun --nproc_per_node N`` (gloo on
CPUs, NCCL on GPUs) or ``accelerate launch`` across machines — the same code. Batch size is one
sequence per process (no padding, so pitfall P2 cannot drop labels); ``grad_accum`` sequences per
process make one optimizer step, and DDP averages across processes.

Which sample a process trains on at a step is a pure function of (seed, step, micro-step, rank):
one permutation of all samples per epoch, consumed in order across ranks. Together with NFS
draws keyed by (seed, epoch, sample) and the saved RNG/optimizer/scheduler state, a resumed run
continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import resource
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .checkpoints import (
    checkpoints,
    export_adapter,
    load_checkpoint,
    save_checkpoint,
    trainable_state,
)
from .config import TrainConfig
from .data import TrainSet
from .layout import TRAINED_LAYOUT
from .objective import STATS, Objective, summarize
from .setup import build_model, build_sets, model_info

log = logging.getLogger(__name__)


class Schedule:
    """step → (epoch, sample index) for every (micro-step, rank); epochs are fresh permutations."""

    def __init__(self, n: int, seed: int, world: int, accum: int) -> None:
        self.n, self.seed, self.world, self.accum = n, seed, world, accum
        self._perms: dict[int, np.ndarray] = {}

    def at(self, step: int, micro: int, rank: int) -> tuple[int, int]:
        c = (step * self.accum + micro) * self.world + rank
        epoch, pos = divmod(c, self.n)
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch, 0x5EC]).permutation(self.n)}
        return epoch, int(self._perms[epoch][pos])


def run_fingerprint(cfg: TrainConfig, world: int, train_set: TrainSet) -> dict:
    """What must not change between a checkpoint and its resumption."""
    keep = ("model", "base", "tower", "tokens_per_frame", "steps", "grad_accum", "lr", "projector_lr",
            "warmup", "weight_decay", "lora_r", "lora_alpha", "lora_dropout", "lora_lm_head",
            "nfs_rho", "knowledge_mix", "context_limit", "reserve", "system_prompt", "seed")
    d = {k: getattr(cfg, k) for k in keep}
    keys = "\n".join(f"{s.video_id}#{s.chunk}:{len(s)}" for s in train_set.samples)
    d.update(world_size=world,
             data=f"{len(train_set)} samples, sha256 {hashlib.sha256(keys.encode()).hexdigest()[:16]}")
    return json.loads(json.dumps(d))


@torch.no_grad()
def evaluate(objective: Objective, val_set: TrainSet) -> dict[str, float]:
    """Teacher-forced loss and decisions on every val sample, all negatives kept (ρ = 1)."""
    was = objective.training
    objective.eval()
    total = torch.zeros(len(STATS))
    for i in range(len(val_set)):
        item = val_set.item(i, 0, rho=1.0)
        total += objective(item["input_ids"], item["labels"], item["feats"])[1].cpu()
    objective.train(was)
    return summarize(total)


def train(cfg: TrainConfig, *, progress: bool = True) -> dict:
    """Run (or resume) one training run; returns the final summary (also in out/summary.json)."""
    from accelerate import Accelerator
    from accelerate.utils import gather_object, set_seed
    from tqdm import tqdm
    from transformers import get_cosine_schedule_with_warmup

    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision)
    out = Path(cfg.out)
    found = checkpoints(out) if out.is_dir() else []
    if found and not cfg.resume:
        raise FileExistsError(f"{out} already holds {found[-1][1].name}; pass --resume to continue "
                              "it or choose another --out")
    set_seed(cfg.seed)  # identical initialisation on every rank
    model, base_info = build_model(cfg)
    model.to(acc.device)
    train_set, val_set = build_sets(cfg, model, acc, progress=progress)
    lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    proj = list(model.mm_projector.parameters())
    optimizer = torch.optim.AdamW([{"params": lora, "lr": cfg.lr},
                                   {"params": proj, "lr": cfg.projector_lr}],
                                  weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup, cfg.steps)
    objective = Objective(model).train()
    model.vision.eval()
    dobj, optimizer = acc.prepare(objective, optimizer)
    run = run_fingerprint(cfg, acc.num_processes, train_set)
    start = 0
    if found:
        start = load_checkpoint(acc, found[-1][1], model, optimizer, scheduler, run)
        log.info("resumed from %s at step %d", found[-1][1], start)
    else:
        torch.manual_seed(cfg.seed * 1000 + acc.process_index)  # LoRA dropout, per rank
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str))
    sched = Schedule(len(train_set), cfg.seed, acc.num_processes, cfg.grad_accum)
    params = lora + proj
    logf = out / "train_log.jsonl"

    def write(record: dict) -> None:
        if acc.is_main_process:
            with logf.open("a") as f:
                f.write(json.dumps(record) + "\n")

    if val_set is not None and start == 0 and acc.is_main_process:
        write({"event": "val", "step": 0, **evaluate(objective, val_set)})
    acc.wait_for_everyone()
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step",
               disable=not (progress and acc.is_main_process))
    last: dict = {}
    for step in range(start, cfg.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        stats = torch.zeros(len(STATS), device=acc.device)
        keys = []
        for micro in range(cfg.grad_accum):
            epoch, idx = sched.at(step, micro, acc.process_index)
            item = train_set.item(idx, epoch)
            keys.append(item["key"])
            sync = micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if sync else acc.no_sync(dobj):
                loss, st = dobj(item["input_ids"], item["labels"], item["feats"])
                acc.backward(loss / cfg.grad_accum)
            stats += st
        grad_norm = float(acc.clip_grad_norm_(params, cfg.clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        stats = acc.reduce(stats, reduction="sum")
        keys = gather_object(keys)
        last = {"event": "step", "step": step + 1, "epoch": epoch, **summarize(stats),
                "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                "s_per_step": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                "samples": keys}
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            write(last)
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.3f}", dec=f"{last['decision_acc']:.2f}",
                        asst=f"{last['asst_loss']:.3f}")
        done = step + 1 == cfg.steps
        stop = cfg.stop_at > 0 and step + 1 == cfg.stop_at and not done
        if (cfg.save_every and ((step + 1) % cfg.save_every == 0 or done)) or stop:
            save_checkpoint(acc, out, step + 1, model, optimizer, scheduler, run, cfg.keep_checkpoints)
        if stop:
            bar.close()
            return {"event": "stopped", "step": step + 1, "last": last}
        if val_set is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0 and not done:
            if acc.is_main_process:
                write({"event": "val", "step": step + 1, **evaluate(objective, val_set)})
            acc.wait_for_everyone()
    bar.close()
    return _finish(acc, cfg, model, objective, val_set, base_info, last, write)


def _finish(acc, cfg: TrainConfig, model, objective, val_set, base_info: dict, last: dict, write) -> dict:
    """Check the replicas agree, evaluate, export adapter + merged model (main process)."""
    from accelerate.utils import gather_object

    from proassist_ros.model import save
    from proassist_ros.model.lora import merge_lora

    digest = _digest(trainable_state(model))
    digests = gather_object([digest])
    summary = {"event": "end", "steps": cfg.steps, "replicas_in_sync": len(set(digests)) == 1,
               "rank_digests": digests, "last": {k: v for k, v in last.items() if k != "samples"},
               "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if acc.is_main_process:
        if val_set is not None:
            summary["val"] = evaluate(objective, val_set)
            write({"event": "val", "step": cfg.steps, **summary["val"]})
        out = Path(cfg.out)
        if cfg.export:
            info = model_info(cfg, model, base_info)
            export_adapter(model, out / "adapter", info)
            merge_lora(model)
            model.config.untrained = info["untrained"]
            model.config.source = info["source"]
            # with how its sequences end a turn (train/layout.py), so the engine runs it alike
            model.config.defaults = {"context_limit": cfg.context_limit, "reserve": cfg.reserve,
                                     **TRAINED_LAYOUT}
            save(model, out / "model")
            summary["exports"] = {"adapter": str(out / "adapter"), "model": str(out / "model")}
        write(summary)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    acc.wait_for_everyone()
    if not summary["replicas_in_sync"]:
        raise RuntimeError(f"DDP replicas diverged: weight digests {digests}")
    return summary


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].float().numpy().tobytes())
    return h.hexdigest()[:16]
