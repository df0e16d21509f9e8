"""`proassist` command line: demo, bringup, bench.

Subcommands are thin: each one calls into the ROS-free layers (or `ros/` for bringup).
"""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from proassist_ros import demo

    return demo.run(args)


def _bringup(argv: list[str]) -> int:
    from proassist_ros.ros.bringup import bringup_main

    return bringup_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bringup"]:  # ROS arguments pass through untouched
        return _bringup(argv[1:])
    if argv[:1] == ["bench"]:
        from proassist_ros.eval.bench import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="proassist", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="run the assistant on the embedded model and sample data")
    demo.add_argument("--model", default="embedded", help="model spec (embedded, tiny, a directory)")
    demo.add_argument("--output", default="demo_output", help="where results are written")
    demo.add_argument("--frames", type=int, default=40, help="frames of the sample stream")
    demo.set_defaults(func=_demo)
    sub.add_parser("bench", help="speed, catch-up and memory benchmarks (plots in bench_output/)")
    sub.add_parser("bringup", help="assistant + TTS nodes in one process (args: --params-file F, --ros-args ...)")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
