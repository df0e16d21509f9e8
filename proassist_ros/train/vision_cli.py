"""``python -m proassist_ros.train.vision_cli``: stage 1 (pretrain the tower) and feature extraction.

    python -m proassist_ros.train.vision_cli pretrain --data data/train --val data/val --out runs/tower
    proassist train vision pretrain --preset v2 --data data/train --val data/val --out runs/v2/tower
    python -m proassist_ros.train.vision_cli features --tower runs/tower --data data/train --out runs/feats

``OMP_WAIT_POLICY=PASSIVE`` is set (unless the environment sets it) before torch is imported: on
a 2-core machine shared with other processes, OpenMP threads spin-waiting for each other made a
training step ~3× and frame preprocessing ~9× slower (docs/vision_pretraining.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from proassist_ros.constants import PATCH_STEMS

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m proassist_ros.train.vision_cli", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="stage 1: SigLIP sigmoid-loss pretraining on captioned frames")
    p.add_argument("--data", nargs="+", required=True, help="training bags or directories of bags")
    p.add_argument("--val", nargs="+", help="held-out bags for vision_eval.json (default: 10%% of --data)")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="default", choices=("default", "smoke", "v2", "v5"),
                   help="v2: + the world's facts (step ends, step, hand, object states) as extra targets, 2 FPS; "
                        "v5: v2 with a conv stem, 1200 steps, meant to start from a default tower (--init-tower)")
    for name, typ in (("image-size", int), ("patch-size", int), ("hidden", int), ("layers", int), ("heads", int),
                      ("intermediate", int), ("steps", int), ("batch", int), ("per-video", int), ("lr", float),
                      ("bias-init", float), ("fps", float), ("ckpt-every", int), ("stop-after", int)):
        p.add_argument(f"--{name}", type=typ)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", default="phrases", choices=("phrases", "captions"),
                   help="what the text tower reads: each caption's phrases (default) or whole captions")
    p.add_argument("--facts", action=argparse.BooleanOptionalAction, default=None,
                   help="fact heads on the frame token (default: the preset's; on for v2)")
    p.add_argument("--near-frac", type=float, help="share of each video's batch frames from around step ends (v2)")
    p.add_argument("--fact-weights", help="loss weights of the fact targets, e.g. completed=10,step=1,hand=1,states=1")
    p.add_argument("--init-tower", help="start the image tower from this finished tower (e.g. model/weights/embedded)")
    p.add_argument("--patch-stem", choices=PATCH_STEMS,
                   help="how pixels become the patch grid: SigLIP's patch embedding (default) or a convolutional "
                        "stem (learns spatial cues faster; docs/vision_pretraining.md)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT has checkpoints")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--cache-dir", help="preprocessed-frame cache (default OUT/cache)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    f = sub.add_parser("features", help="pre-extract frozen-tower frame features for stage 2")
    f.add_argument("--data", nargs="+", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--model", default="embedded", help="model spec for load() (default embedded)")
    f.add_argument("--tower", help="stage-1 output directory to put into the model")
    f.add_argument("--tokens-per-frame", type=int, default=1, help="I (embedded/tiny models)")
    f.add_argument("--fps", type=float, default=2.0)
    f.add_argument("--batch", type=int, default=64)
    f.add_argument("--overwrite", action="store_true")
    f.add_argument("--quiet", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:  # bad paths and data: named
        print(f"proassist train vision {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.cmd == "pretrain":
        from proassist_ros.train.vision import pretrain_tower

        out = pretrain_tower(
            args.data, args.out, val=args.val, preset=args.preset, image_size=args.image_size,
            patch_size=args.patch_size, hidden=args.hidden, layers=args.layers, heads=args.heads,
            intermediate=args.intermediate, steps=args.steps, batch=args.batch, per_video=args.per_video,
            lr=args.lr, bias_init=args.bias_init, seed=args.seed, targets=args.targets,
            resume=not args.no_resume, fps=args.fps,
            ckpt_every=args.ckpt_every,
            stop_after=args.stop_after, augment_frames=not args.no_augment, evaluate=not args.no_eval,
            cache_dir=args.cache_dir, device=args.device, progress=not args.quiet, facts=args.facts,
            near_frac=args.near_frac, fact_weights=args.fact_weights, init_tower=args.init_tower,
            patch_stem=args.patch_stem)
        ev = out / "vision_eval.json"
        done = (out / "tower.safetensors").is_file()
        print(ev.read_text() if ev.is_file() else f"finished (no evaluation): {out}" if done else
              f"stopped; resume with the same command ({out})")
        return 0
    from proassist_ros.model import load
    from proassist_ros.model.tower import load_tower_into, tower_overrides
    from proassist_ros.train.features import extract_features

    kw = {}
    if args.model in ("embedded", "tiny"):
        kw["tokens_per_frame"] = args.tokens_per_frame
        if args.tower and args.model == "embedded":
            kw.update(tower_overrides(args.tower), weights="random")
    model = load(args.model, **kw)
    if args.tower:
        load_tower_into(model, args.tower)
    paths = extract_features(model, args.data, args.out, fps=args.fps, batch=args.batch, overwrite=args.overwrite,
                             progress=not args.quiet)
    print(json.dumps({"files": len(paths), "out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
