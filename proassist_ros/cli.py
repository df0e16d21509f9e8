"""`proassist` command line: demo, bringup, bench, eval, replay, train, synth, dataset {import,export,info}.

Subcommands are thin: each one calls into the ROS-free layers (or `ros/` for bringup).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from proassist_ros.constants import DEFAULT_QUANTIZE, QUANTIZE_CHOICES

# Errors a user can fix (a bad path, a bad file, an existing output): one line, exit status 2.
_USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, RuntimeError)


def _demo(args: argparse.Namespace) -> int:
    from proassist_ros import demo

    return demo.run(args)


def _bringup(argv: list[str]) -> int:
    from proassist_ros.ros.bringup import bringup_main

    return bringup_main(argv)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH (e.g. 640x480), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _synth(args: argparse.Namespace) -> int:
    from proassist_ros.data.synth import synth

    res = synth(Path(args.out), args.videos, args.split, args.seed, size=args.size, hz=args.hz,
                compressed=args.compressed, long=args.long, workers=args.workers,
                start=args.start, overwrite=args.overwrite, skip_existing=args.skip_existing,
                jpeg_quality=args.jpeg_quality, audio=args.audio)
    print(f"{len(res.bags)} bags in {args.out}: {res.frames} frames, {res.video_s:.1f} s of video "
          f"in {res.wall_s:.1f} s = {res.x_real_time:.1f}x real time")
    return 0


def _dataset_import(args: argparse.Namespace) -> int:
    from proassist_ros.data import convert

    src = Path(args.source)
    write_kw = {"compressed": not args.raw, "raw": args.raw, "storage": args.storage}
    if src.suffix.lower() == ".json":
        if args.size or args.annotation:
            raise ValueError("--size and --annotation apply to video import only")
        bags = convert.import_json(src, Path(args.out), frames_dir=args.frames,
                                   video_uids=args.video_uid, conversation=args.conversation,
                                   fps=args.fps, split=args.split, **write_kw)
    elif src.suffix.lower() in (".mp4", ".mov", ".avi", ".mkv", ".webm"):
        if args.video_uid and len(args.video_uid) > 1:
            raise ValueError("a video import takes one --video-uid")
        bags = [convert.import_video(src, Path(args.out), annotation=args.annotation,
                                     video_uid=args.video_uid[0] if args.video_uid else None,
                                     fps=args.fps or 2.0, size=args.size, split=args.split,
                                     jpeg_quality=args.jpeg_quality, **write_kw)]
    elif not src.exists():
        raise FileNotFoundError(f"no such file: {src}")
    else:
        raise ValueError(f"cannot import {src}: expected a ProAssist .json or a video (.mp4)")
    for bag in bags:
        print(bag)
    return 0


def _dataset_export(args: argparse.Namespace) -> int:
    from proassist_ros.data.convert import export_bags

    print(export_bags([Path(b) for b in args.bags], Path(args.out), fps=args.fps,
                      jpeg_quality=args.jpeg_quality))
    return 0


def _dataset_info(args: argparse.Namespace) -> int:
    from proassist_ros.data.dataset import bag_info, iter_dataset

    for bag in iter_dataset([Path(b) for b in args.bags]):
        print(json.dumps(bag_info(bag, args.camera_topic), indent=1, ensure_ascii=False))
    return 0


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    sy = sub.add_parser("synth", help="render task-world videos into dataset bags (docs/dataset.md)")
    sy.add_argument("--out", required=True, help="output directory (one bag directory per video)")
    sy.add_argument("--videos", type=int, required=True, help="number of videos")
    sy.add_argument("--split", required=True, choices=("train", "val", "test"))
    sy.add_argument("--seed", type=int, required=True, help="base seed of the generator")
    sy.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (640x480)")
    sy.add_argument("--hz", type=float, default=10.0, help="camera rate (10)")
    sy.add_argument("--compressed", action="store_true",
                    help="JPEG frames on /camera/image_raw/compressed (default: raw rgb8)")
    sy.add_argument("--jpeg-quality", type=int, default=90)
    sy.add_argument("--long", action="store_true", help="the long subset (>= 10 min videos)")
    sy.add_argument("--workers", type=int, default=2, help="processes, one video each (2)")
    sy.add_argument("--start", type=int, default=0, help="index of the first video (0)")
    sy.add_argument("--overwrite", action="store_true", help="replace existing bags")
    sy.add_argument("--skip-existing", action="store_true", help="keep existing bags (resume)")
    sy.add_argument("--audio", action="store_true",
                    help="also the user turns spoken (espeak-ng) on /proassist/audio, for eval --asr")
    sy.set_defaults(func=_synth)

    ds = sub.add_parser("dataset", help="dataset bags: import/export ProAssist JSON, info")
    dsub = ds.add_subparsers(dest="dataset_cmd", required=True)
    im = dsub.add_parser("import", help="ProAssist JSON + frames, or a video (+ annotation) -> bags")
    im.add_argument("source", help="a ProAssist dialogue .json, or an .mp4")
    im.add_argument("--out", required=True, help="directory for the bags")
    im.add_argument("--frames", help="JSON: frames root with {video_uid}/NNNNNN.jpg "
                                     "(default: frames/ next to the JSON)")
    im.add_argument("--annotation", help="video: its ProAssist JSON (else a camera-only bag)")
    im.add_argument("--video-uid", action="append", help="only these videos (JSON); the uid of "
                                                         "the video (mp4; default: file stem)")
    im.add_argument("--conversation", type=int, help="only this conversation index")
    im.add_argument("--fps", type=float, help="frame rate of the frame files / video sampling "
                                              "(default: from the JSON; 2 for a video)")
    im.add_argument("--size", type=_size, help="video: resize frames to WxH")
    im.add_argument("--split", help="set the bags' split")
    im.add_argument("--raw", action="store_true", help="raw rgb8 frames instead of JPEG")
    im.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    im.add_argument("--jpeg-quality", type=int, default=90)
    im.set_defaults(func=_dataset_import)
    ex = dsub.add_parser("export", help="bags -> ProAssist JSON (dialogs.json) + JPEG frames")
    ex.add_argument("bags", nargs="+", help="bags or directories of bags")
    ex.add_argument("--out", required=True, help="output directory")
    ex.add_argument("--fps", type=float, help="sample frames at this rate (default: all)")
    ex.add_argument("--jpeg-quality", type=int, default=90, help="for raw-only bags")
    ex.set_defaults(func=_dataset_export)
    info = dsub.add_parser("info", help="print a bag's facts and topic counts (JSON)")
    info.add_argument("bags", nargs="+", help="bags or directories of bags")
    info.add_argument("--camera-topic", help="the bags' camera topic (default: /camera/image_raw or "
                                             "its /compressed, else the bag's only image topic)")
    info.set_defaults(func=_dataset_info)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bringup"]:  # ROS arguments pass through untouched
        return _bringup(argv[1:])
    if argv[:1] == ["bench"]:
        from proassist_ros.runtime.threads import prepare_process

        prepare_process()  # the node's OpenMP wait policy, before torch loads
        from proassist_ros.eval.bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["eval"]:
        from proassist_ros.eval.cli import main as eval_main

        return eval_main(argv[1:])
    if argv[:2] == ["train", "vision"]:  # stage 1: tower pretraining, feature pre-extraction
        from proassist_ros.train.vision_cli import main as vision_main

        return vision_main(argv[2:])
    if argv[:1] == ["train"]:
        from proassist_ros.train.cli import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["asr"]:
        from proassist_ros.speech.cli import main as asr_main

        return asr_main(argv[1:])
    if argv[:1] == ["replay"]:
        from proassist_ros.ros.replay import main as replay_main

        return replay_main(argv[1:])
    parser = argparse.ArgumentParser(prog="proassist", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="run the assistant on the embedded model and sample data")
    demo.add_argument("--model", default="embedded", help="model spec (embedded, tiny, a directory)")
    demo.add_argument("--output", default="demo_output", help="where results are written")
    demo.add_argument("--bag", default="test_0004_take_medicine",
                      help="a dataset bag, or the name of a shipped sample in samples/")
    demo.add_argument("--rate", type=float, default=1.0, help="replay speed")
    demo.add_argument("--quantize", choices=QUANTIZE_CHOICES, default=DEFAULT_QUANTIZE,
                      help="the node's quantize parameter (auto: int8 on CPU; none: fp32; docs/performance.md)")
    demo.set_defaults(func=_demo)
    sub.add_parser("bench", help="speed, catch-up and memory benchmarks (plots in bench_output/)")
    sub.add_parser("eval", help="score dataset bags offline with the paper's metric (eval --help)")
    sub.add_parser("train", help="fine-tune on dataset bags: NFS + LoRA + projector (train --help); "
                                 "stage 1: train vision {pretrain,features} --help; "
                                 "what a tower sees: train probe --help; data → shipped model: train pipeline --help")
    sub.add_parser("replay", help="replay a dataset bag to the running nodes, record and score their outputs "
                                  "(replay --help)")
    sub.add_parser("asr", help="transcribe a WAV file with the ASR (start/end times, one line "
                               "per utterance; asr --help)")
    sub.add_parser("bringup", help="assistant + TTS nodes, one process each (args: --params-file F, --ros-args ...)")
    _add_data_commands(sub)
    args = parser.parse_args(argv)
    if args.cmd in ("synth", "dataset"):
        try:
            return args.func(args)
        except _USER_ERRORS as exc:
            print(f"proassist {args.cmd}: error: {exc}", file=sys.stderr)
            return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
