"""The child of ``eval.bench_ros.measure``: ``make demo``'s bringup + a replay, and a third process's
view of each Guidance (docs in eval/bench_ros.py). It sits beside demo.py, whose parameters and
start-up wait it uses, above the ROS adapters it drives."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from proassist_ros.eval.bench_ros import _null


def _run(args: argparse.Namespace) -> dict:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from proassist_ros.constants import GUIDANCE, NS_PER_S, absolute
    from proassist_ros.demo import _wait_active, bringup
    from proassist_ros.msg import Guidance
    from proassist_ros.ros.replay import ReplaySettings, replay

    out = Path(args.out).resolve()
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rclpy.init()
    node = rclpy.create_node("proassist_bench_e2e")
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    clock: list[tuple[float, int]] = []   # (monotonic receipt, /clock ns)
    got: list[tuple[float, int, str, float]] = []  # (monotonic receipt, header stamp ns, session, node latency_s)
    lock = threading.Lock()

    def on_clock(m) -> None:
        with lock:
            clock.append((time.monotonic(), m.clock.sec * NS_PER_S + m.clock.nanosec))

    def on_guidance(m) -> None:
        now = time.monotonic()
        with lock:
            got.append((now, m.header.stamp.sec * NS_PER_S + m.header.stamp.nanosec, m.session_id, m.latency_s))

    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Clock, "/clock", on_clock, QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    node.create_subscription(Guidance, absolute(GUIDANCE), on_guidance, reliable)
    try:
        with bringup(out, args.model) as proc:
            if not _wait_active(node, proc, out):
                return _null(f"bringup did not become active (see {out / 'bringup.log'})")
            metrics = replay(Path(args.bag), ReplaySettings(rate=args.rate, out=out / "replay", timeout_s=120.0))
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    session = metrics["live"]["session_id"]
    e2e, node = [], []
    for recv, stamp, sid, latency in got:
        if sid != session:
            continue
        before = [c for c in clock if c[0] <= recv]
        if not before:
            continue
        mono, sim = before[-1]
        sim_now = sim + (recv - mono) * args.rate * NS_PER_S
        e2e.append((sim_now - stamp) / NS_PER_S / args.rate)
        node.append(float(latency))
    live = metrics["live"]
    info = {"bag": str(args.bag), "rate": args.rate, "guidance_messages": len(e2e),
            "frames_processed": live["frames_processed"], "frames_expected": live["frames_expected"],
            "slowest_frame_s": live["slowest_frame_s"], "slowest_frame": live.get("slowest_frame", ""),
            "problems": metrics.get("problems", []),
            "note": "frame stamp → Guidance received by another process over DDS (sim time, the demo's "
                    "parameters: reply_max_tokens 40, the model's own θ); includes the reply's decoding"}
    if not e2e:
        return {**_null("no Guidance of the replay's session was received"), "ros_e2e": info}
    # The node's own share (Guidance.latency_s: frame receipt → publish, mostly the reply's decoding);
    # the rest is the camera frame's way in (player, DDS, the node's queue) and the Guidance's way out.
    return {"ros_e2e_p50_s": float(np.median(e2e)), "ros_e2e_p95_s": float(np.percentile(e2e, 95)),
            "ros_e2e": {**info, "e2e_s": [round(x, 4) for x in e2e], "node_latency_s": [round(x, 4) for x in node],
                        "node_latency_p50_s": float(np.median(node))}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proassist_ros.bench_e2e", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="embedded")
    p.add_argument("--bag", type=Path, required=True)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from proassist_ros.utils import netns

    netns.reexec_isolated(netns.python_argv())
    from proassist_ros.ros.dds_profile import apply_default_profile

    apply_default_profile()
    result = _run(args)
    (args.out / "ros_e2e.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "ros_e2e"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
