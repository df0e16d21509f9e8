"""`proassist train`: stage 2 (LoRA + projector) on dataset bags; see docs/training.md.

Single process: ``proassist train --data DIR --out runs/x``. Several processes or GPUs, the same
options: ``torchrun --nproc_per_node 2 -m proassist_ros.train.cli --data DIR --out runs/x``.
A preset sets defaults; every explicit option overrides it. ``proassist train probe`` (train/probe.py)
fits linear probes on a frozen tower's frame features, to judge a tower before a stage-2 run.
``proassist train pipeline --out runs/embedded`` (train/pipeline.py) runs every stage, from data to
the shipped model, resumably.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from .config import TrainConfig
from .presets import PRESETS, preset

_USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, KeyError)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proassist train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                argument_default=argparse.SUPPRESS,
                                epilog="what a frozen tower's features tell: proassist train probe --help; "
                                       "everything from data to a shipped model: proassist train pipeline --help")
    a = p.add_argument
    a("--data", nargs="+", required=True, metavar="BAG_OR_DIR", help="training bags or directories of bags")
    a("--val", nargs="+", metavar="BAG_OR_DIR", help="held-out bags: teacher-forced loss, decision accuracy, speak F1")
    a("--out", required=True, help="run directory: checkpoints, train_log.jsonl, adapter/, model/")
    a("--preset", choices=sorted(PRESETS), default="default", help="defaults for the options below")
    a("--model", help="embedded | tiny | a checkpoint directory")
    a("--base", help="continue from this checkpoint (ours, or a released ProAssist directory)")
    a("--llm-path", help="base LLM directory of a released --base")
    a("--vision-path", help="SigLIP directory of a released --base")
    a("--tower", help="stage-1 output directory (train/vision.py): the trained vision tower")
    a("--tokens-per-frame", type=int, help="I (1, 5, 10); default: the model's")
    a("--steps", type=int, help="optimizer steps")
    a("--grad-accum", type=int, help="sequences per process per step")
    a("--lr", type=float, help="LoRA learning rate")
    a("--projector-lr", type=float, help="projector learning rate")
    a("--warmup", type=int, help="linear warm-up steps before the cosine decay")
    a("--lora-r", type=int, help="LoRA rank")
    a("--lora-alpha", type=float, help="LoRA alpha")
    a("--lora-dropout", type=float, help="LoRA dropout")
    a("--lora-lm-head", action=argparse.BooleanOptionalAction, help="LoRA on the LM head too (paper: yes)")
    a("--nfs-rho", type=float, help="NFS ρ: share of silent decision points learned (<0: none, ≥1: all)")
    a("--knowledge-mix", action=argparse.BooleanOptionalAction,
      help="each episode with and without its recipe (paper ×2); --no-knowledge-mix: with only")
    a("--summary-at-every-reference", action=argparse.BooleanOptionalAction,
      help="end a chunk with an IPS summary turn at every progress_summary reference (default: on); "
           "--no-summary-at-every-reference: only where the context fills")
    a("--context-limit", type=int, help="L: the engine's context limit the model will run with")
    a("--reserve", type=int, help="IPS trigger reserve (triggers at L − reserve)")
    a("--features", help="frame-feature cache directory (default OUT/features)")
    a("--no-feature-cache", dest="feature_cache", action="store_false",
      help="compute frame features in memory instead")
    a("--seed", type=int, help="seed of everything (init, order, NFS, context draws, dropout)")
    a("--save-every", type=int, help="checkpoint every N steps (0: only at the end)")
    a("--keep-checkpoints", type=int, help="how many of the latest checkpoints to keep")
    a("--system-prompt", help="the node's system_prompt (must match what it will run with)")
    a("--eval-every", type=int, help="evaluate --val every N steps (0: at start and end only)")
    a("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    a("--stop-at", type=int, help="stop at this step with a checkpoint (continue later with --resume)")
    a("--mixed-precision", choices=("no", "bf16", "fp16"), help="autocast on GPUs")
    a("--gradient-checkpointing", action="store_true", help="trade compute for memory (long L)")
    a("--threads", type=int, help="torch threads per process (0: torch's default)")
    a("--no-export", dest="export", action="store_false", help="skip adapter/ and model/ exports")
    a("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    """Preset defaults, then the explicitly given options."""
    given = vars(ns)
    values = preset(given.pop("preset", "default"))
    names = {f.name for f in fields(TrainConfig)}
    values.update({k: v for k, v in given.items() if k in names})
    if "warmup" not in given and "steps" in given:  # a shorter run than the preset's: scale it
        values["warmup"] = min(values.get("warmup", 0), given["steps"] // 10)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"]:  # linear probes on frozen frame features (train/probe.py)
        from .probe import main as probe_main

        return probe_main(argv[1:])
    if argv[:1] == ["pipeline"]:  # data → stage 1 → features → stage 2 → θ → ship (train/pipeline.py)
        from .pipeline import main as pipeline_main

        return pipeline_main(argv[1:])
    ns = parser().parse_args(argv)
    quiet = getattr(ns, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(ns)
        _check_inputs(cfg)
        from .trainer import train

        summary = train(cfg, progress=not quiet)
    except _USER_ERRORS as exc:
        print(f"proassist train: error: {exc}", file=sys.stderr)
        return 2
    last = summary.get("last", {})
    if summary.get("event") == "stopped":
        print(f"stopped at step {summary['step']} of {cfg.steps}; continue with --resume")
        return 0
    print(f"done: {cfg.steps} steps, loss {last.get('loss', float('nan')):.4f}, decision acc "
          f"{last.get('decision_acc', float('nan')):.3f}; exports: {summary.get('exports', 'none')}")
    return 0


def _check_inputs(cfg) -> None:
    """Bad bags, tower or base name themselves before the model loads (seconds to minutes)."""
    from proassist_ros.data.dataset import iter_dataset
    from proassist_ros.model.spec import check_spec

    for group in (cfg.data, cfg.val or []):
        if group:
            list(iter_dataset(group))
    if cfg.base:
        check_spec(cfg.base)
    if cfg.tower:
        from proassist_ros.model.tower import read_tower_config

        read_tower_config(cfg.tower)


if __name__ == "__main__":
    sys.exit(main())
