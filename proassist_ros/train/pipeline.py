"""``proassist train pipeline``: one command from nothing to a shipped embedded model.

data (``proassist synth``: train, train-long, val) → stage 1 (``train vision pretrain``: the tower)
→ features (``train vision features``: the frozen tower's frame features, cached for stage 2)
→ stage 2 (``proassist train``: LoRA + projector) → θ (``proassist eval --sweep`` on validation
videos, the paper's best local maximum of F1) → ship (``train.ship``: fp16 safetensors where
``load("embedded")`` reads them, or ``OUT/embedded``).

Why subprocesses of the same CLI: every stage is exactly the command a user would type (the
pipeline prints it), shows its own progress bar, and frees its memory when it ends. Resumable:
``OUT/pipeline.json`` records each finished stage with its wall time; running the same command
again skips those and resumes the interrupted one (synth keeps existing bags, both training
stages continue from their latest checkpoint). The test split and the held-out task type are
never touched: θ and every choice come from validation.

Presets: ``default`` (2 CPU cores, the shipped model's recipe: docs/model_card.md), ``gpu`` (the
same pipeline bigger, on CUDA), ``smoke`` (minutes: a few small videos, a few steps; checks a
setup end to end, not a useful model).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STAGES = ("data", "stage1", "features", "stage2", "theta", "ship")


@dataclass(frozen=True)
class PipelineConfig:
    """What each stage runs with (a preset; docs/training.md, "One command")."""

    train_videos: int = 200
    train_seed: int = 7
    long_videos: int = 10          # train-split long videos (multi-round IPS summaries)
    val_videos: int = 24
    val_seed: int = 8
    size: str = "320x240"
    hz: float = 2.0
    tower_preset: str = "v2"       # train vision pretrain --preset
    tower_args: tuple[str, ...] = ()
    tower_base_preset: str | None = None  # set: stage 1 first trains this tower (OUT/tower_base) and
                                          # starts the tower from it (--init-tower)
    stage2_preset: str = "default"  # proassist train --preset
    stage2_args: tuple[str, ...] = ()
    stage2_val: tuple[int, int] = (0, 6)     # val videos [a, b): stage 2's held-out loss
    theta_val: tuple[int, int] = (6, 18)     # val videos [a, b): θ selection
    theta_sweep: str = "0.1:0.5:0.1"
    device: str = "cpu"
    processes: int = 2             # stage 2 and the θ sweep: torchrun ranks (one per core / GPU)


PRESETS: dict[str, PipelineConfig] = {
    # v6 (docs/model_card.md, "v6 run"; 140 min of stages on 2 cores): stage 1 trains the default
    # (v1) tower, then the v5 tower from it (conv stem, facts, 1 200 steps: the probe's (b) pair
    # AUC .850), then 2 ranks × 750 steps of stage 2 with a summary turn at every
    # progress_summary reference. Validation F1 0.669 (v3: 0.456), so it is the shipped model.
    "default": PipelineConfig(tower_base_preset="default", tower_preset="v5", stage2_args=("--steps", "750")),
    "gpu": PipelineConfig(train_videos=400, long_videos=20, val_videos=24, size="384x288",
                          tower_base_preset="default", tower_preset="v5",
                          stage2_preset="gpu", tower_args=("--device", "cuda", "--steps", "4000"),
                          device="cuda", processes=1),
    "smoke": PipelineConfig(train_videos=2, long_videos=0, val_videos=2, size="160x120",
                            tower_preset="smoke",
                            # a shape load("embedded") builds: heads = hidden // 64, MLP 4 · hidden
                            tower_args=("--hidden", "64", "--heads", "1", "--intermediate", "256"),
                            stage2_args=("--steps", "2", "--save-every", "1",
                                                               "--eval-every", "0"),
                            stage2_val=(0, 1), theta_val=(1, 2), theta_sweep="0.2:0.4:0.2", processes=1),
}


def _bags(folder: Path, span: tuple[int, int] | None = None) -> list[str]:
    bags = sorted(str(p) for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return bags[span[0]:span[1]] if span else bags


class Pipeline:
    """The stages of one run directory; ``run()`` does the ones not yet done."""

    def __init__(self, out: Path, preset: str, ship_to: Path | None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} (one of {', '.join(PRESETS)})")
        self.out, self.preset, self.cfg = out, preset, PRESETS[preset]
        self.ship_to = ship_to or out / "embedded"
        self.state_path = out / "pipeline.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        if self.state.get("preset", preset) != preset:
            raise ValueError(f"{out} was started with --preset {self.state['preset']}, not {preset}; "
                             "use another --out or the same preset")
        self.data, self.tower, self.s2 = out / "data", out / "tower", out / "stage2"

    # ---- the stages: each returns the commands it runs -----------------------------------------
    def _launch(self, module: str) -> list[str]:
        """``python -m module``, or torchrun with ``processes`` ranks (DDP training, sharded eval)."""
        if self.cfg.processes > 1:
            return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={self.cfg.processes}", "-m", module]
        return [sys.executable, "-m", module]

    def commands(self, stage: str) -> list[list[str]]:
        c, cli = self.cfg, [sys.executable, "-m", "proassist_ros.cli"]
        if stage == "data":
            synth = [*cli, "synth", "--size", c.size, "--hz", f"{c.hz:g}", "--compressed", "--skip-existing"]
            cmds = [[*synth, "--out", str(self.data / "train"), "--videos", str(c.train_videos),
                     "--split", "train", "--seed", str(c.train_seed)],
                    [*synth, "--out", str(self.data / "val"), "--videos", str(c.val_videos),
                     "--split", "val", "--seed", str(c.val_seed)]]
            if c.long_videos:
                cmds.insert(1, [*synth, "--out", str(self.data / "train_long"), "--videos",
                                str(c.long_videos), "--split", "train", "--seed", str(c.train_seed), "--long"])
            return cmds
        if stage == "stage1":
            pretrain = [*cli, "train", "vision", "pretrain", "--data", str(self.data / "train"),
                        "--val", *_bags(self.data / "val", c.stage2_val)]
            if c.tower_base_preset is None:
                return [[*pretrain, "--out", str(self.tower), "--preset", c.tower_preset, *c.tower_args]]
            base = self.out / "tower_base"
            cmds = [] if (base / "tower.safetensors").is_file() else [
                [*pretrain, "--out", str(base), "--preset", c.tower_base_preset, *c.tower_args]]
            return cmds + [[*pretrain, "--out", str(self.tower), "--preset", c.tower_preset, *c.tower_args,
                            "--init-tower", str(base)]]
        if stage == "features":
            return [[*cli, "train", "vision", "features", "--data", *self._train_dirs(),
                     *_bags(self.data / "val", c.stage2_val), "--tower", str(self.tower),
                     "--out", str(self.s2 / "features")]]
        if stage == "stage2":
            resume = ["--resume"] if any(self.s2.glob("checkpoint-*")) else []
            return [[*self._launch("proassist_ros.train.cli"), "--data", *self._train_dirs(), "--val",
                     *_bags(self.data / "val", c.stage2_val), "--out", str(self.s2),
                     "--tower", str(self.tower), "--preset", c.stage2_preset, *c.stage2_args, *resume]]
        if stage == "theta":
            return [[*self._launch("proassist_ros.eval.cli"), *_bags(self.data / "val", c.theta_val),
                     "--model", str(self.s2 / "model"),
                     "--sweep", c.theta_sweep, "--device", c.device, "--out", str(self.out / "eval_val")]]
        if stage == "ship":
            theta = json.loads((self.out / "eval_val" / "metrics.json").read_text())["theta_selected"]
            return [[sys.executable, "-m", "proassist_ros.train.ship", "--tower", str(self.tower),
                     "--adapter", str(self.s2 / "adapter"), "--theta", f"{float(theta):g}",
                     "--out", str(self.ship_to)]]
        raise ValueError(f"unknown stage {stage!r}")

    def _train_dirs(self) -> list[str]:
        dirs = [self.data / "train"] + ([self.data / "train_long"] if self.cfg.long_videos else [])
        return [str(d) for d in dirs]

    # ---- running ---------------------------------------------------------------------------------
    def _save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.state_path)

    def run(self, until: str | None = None) -> dict:
        self.state.setdefault("preset", self.preset)
        self.state["config"] = asdict(self.cfg)
        self.state.setdefault("stages", {})
        t_all = time.monotonic()
        for k, stage in enumerate(STAGES, 1):
            done = self.state["stages"].get(stage, {})
            if done.get("done"):
                print(f"[pipeline {k}/{len(STAGES)}] {stage}: done earlier ({done['wall_s']:.0f} s)", flush=True)
            else:
                t0 = time.monotonic()
                for cmd in self.commands(stage):
                    print(f"[pipeline {k}/{len(STAGES)}] {stage}: {shlex.join(cmd)}", flush=True)
                    rc = subprocess.run(cmd, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}).returncode
                    if rc != 0:
                        raise RuntimeError(f"stage {stage} failed (exit {rc}); run the same "
                                           "pipeline command again to resume")
                wall = done.get("wall_s", 0.0) + time.monotonic() - t0
                self.state["stages"][stage] = {"done": True, "wall_s": round(wall, 1)}
                self._save()
                print(f"[pipeline {k}/{len(STAGES)}] {stage}: {wall / 60:.1f} min", flush=True)
            if stage == until:
                break
        total = sum(s["wall_s"] for s in self.state["stages"].values())
        self.state["wall_s_total"] = round(total, 1)
        self._save()
        print(f"[pipeline] {total / 60:.1f} min in all stages ({(time.monotonic() - t_all) / 60:.1f} "
              f"min this call); state: {self.state_path}", flush=True)
        return self.state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="proassist train pipeline", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="run directory (data, tower, stage2, eval_val, …)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--ship", action="store_true",
                   help="ship into the package (what load('embedded') reads) instead of OUT/embedded")
    p.add_argument("--until", choices=STAGES, help="stop after this stage (run again to go on)")
    args = p.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"proassist train pipeline: error: --out {args.out} is a file, not a run directory",
              file=sys.stderr)
        return 2
    ship_to = None
    if args.ship:
        from proassist_ros.model.embedded import WEIGHTS_DIR

        ship_to = WEIGHTS_DIR
    try:
        Pipeline(args.out, args.preset, ship_to).run(args.until)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"proassist train pipeline: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
