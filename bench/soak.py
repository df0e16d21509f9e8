"""Soak: a stock camera floods the assistant with large raw frames over live DDS (``make soak``).

A camera process with stock settings (rclpy's default QoS, no DDS profile of ours) publishes
``--width`` x ``--height`` rgb8 frames at ``--rate`` FPS for ``--seconds``; the assistant node runs
in a process of its own (the shipped parameters, ``--model``). Every second the run samples the
node's RSS (its process and the model process) and its ``/proassist/stats``; it records every
Guidance. It checks, and writes to ``OUT/soak.json`` with a plot ``OUT/soak.png``:

- decisions keep pace: at least 95 % of the frames the 2 FPS gate would keep are processed;
- the counters are exact: received = processed + dropped (by the gate or the backlog) + decode
  errors; frames lost before the node saw them (its DDS reader queue, ``image_depth``, overflows
  when its executor falls behind deserializing 6 MB messages) are published − received, reported,
  and must stay under 1 %;
- RSS is bounded: the last quarter's peak stays within 10 % (+ 50 MB) of the second quarter's;
- guidance latency is bounded: its p95 over the last half is at most twice that of the first half
  (+ 0.5 s).

``--burst W H N``: afterwards, N frames of W x H (e.g. 7680 4320: 8K) at 2 FPS, which the node
must count and survive. Runs in a private network namespace (only loopback), like the tests.
Exit status 0 when every check holds, 1 otherwise, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAMERA = REPO / "test" / "helpers" / "camera_publisher.py"
NODE = [sys.executable, "-m", "proassist_ros.ros.assistant_node"]
BURST_START_S = 1_800_000_000  # the burst's stamps, apart from the soak's (1 700 000 000 on)


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


def _camera(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CAMERA), "--quiet", *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _done_line(out: str) -> dict:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    done = [d for d in lines if "done" in d]
    if not done:
        raise RuntimeError(f"camera did not finish:\n{out[-2000:]}")
    return done[-1]


class Probe:
    """The run's own rclpy node: stats and guidance of the assistant."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from proassist_ros.msg import AssistantStats, Guidance

        rclpy.init()
        self.node = rclpy.create_node("soak_probe")
        self.stats: list = []
        self.guidance: list = []
        self.node.create_subscription(AssistantStats, "/proassist/stats", self.stats.append, 10)
        self.node.create_subscription(Guidance, "/proassist/guidance", self.guidance.append,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.95 * len(xs)))] if xs else float("nan")


def run(a: argparse.Namespace) -> dict:
    from proassist_ros.utils import netns

    env = {**os.environ, **netns.dds_env(a.domain)}
    node_env = {**env, "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_profile.xml")}
    cam_env = {k: v for k, v in env.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
    os.environ.update(node_env)  # the probe: our profile, like the node
    a.out.mkdir(parents=True, exist_ok=True)
    log = open(a.out / "node.log", "w")  # noqa: SIM115 - open for the node's lifetime
    node = subprocess.Popen([*NODE, "--ros-args", "-p", f"model:={a.model}", "-p", "theta:=0.5",
                             "-p", "reply_max_tokens:=8", "-p", "max_age_s:=0.0"],
                            env=node_env, stdout=log, stderr=subprocess.STDOUT)
    probe = Probe()
    series: list[dict] = []
    try:
        t_start = time.monotonic()
        while not probe.stats:
            probe.spin_for(0.5)
            if node.poll() is not None or time.monotonic() - t_start > 300:
                raise RuntimeError("the assistant did not come up")
        # Prime image_reliability auto (the default): a reliable camera that sends nothing makes
        # the node re-subscribe reliable (it keeps that choice), so no frame of the measured run
        # falls into the best-effort subscription it starts with.
        primer = _camera(["--count", "0", "--go-on-stdin", "--wait", "60"], cam_env)  # stdin held open
        while ": reliable," not in (a.out / "node.log").read_text():
            probe.spin_for(0.2)
            if time.monotonic() - t_start > 300:
                raise RuntimeError("the node did not choose reliable for the camera")
        primer.kill()
        primer.wait()
        count = int(a.seconds * a.rate)
        print(f"[soak] {a.width}x{a.height} rgb8 at {a.rate:g} FPS for {a.seconds:g} s ({count} frames), "
              f"model {a.model}", flush=True)
        cam = _camera(["--width", str(a.width), "--height", str(a.height), "--rate", str(a.rate),
                       "--count", str(count), "--cycle", "4", "--wait", "60"], cam_env)
        t0 = time.monotonic()
        while cam.poll() is None:
            probe.spin_for(1.0)
            s = probe.stats[-1]
            series.append({"t": round(time.monotonic() - t0, 2), "rss_mb": round(_rss_mb(node.pid), 1),
                           "received": s.frames_received, "processed": s.frames_processed,
                           "dropped": s.frames_dropped, "decode_errors": s.decode_errors})
            if len(series) % 10 == 0:
                print(f"[soak] {series[-1]}", flush=True)
        cam_done = _done_line(cam.stdout.read())
        burst = None
        if a.burst and a.burst[2] > 0:
            w, h, n = a.burst
            b = _camera(["--width", str(w), "--height", str(h), "--rate", "2", "--count", str(n),
                         "--cycle", "1", "--start", str(BURST_START_S), "--wait", "60"], cam_env)
            while b.poll() is None:
                probe.spin_for(0.5)
            burst = {"size": f"{w}x{h}", **_done_line(b.stdout.read())}
        # settle: every frame received is accounted for, and the count stopped growing (frames
        # lost before the node never arrive, so "received = published" cannot be waited for)
        expected = count + (burst["done"] if burst else 0)
        deadline, before = time.monotonic() + 120, -1
        while time.monotonic() < deadline:
            probe.spin_for(1.5)
            s = probe.stats[-1]
            if s.frames_received == before and \
                    s.frames_processed + s.frames_dropped + s.decode_errors == s.frames_received:
                break
            before = s.frames_received
        s = probe.stats[-1]
        alive = node.poll() is None
    finally:
        node.terminate()
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
    lat = [(g.header.stamp.sec + g.header.stamp.nanosec * 1e-9, g.latency_s) for g in probe.guidance
           if g.header.stamp.sec < BURST_START_S]  # the soak's own frames
    first, last = lat[: len(lat) // 2], lat[len(lat) // 2:]
    n = len(series)
    q2 = [x["rss_mb"] for x in series[n // 4: n // 2]] or [float("nan")]
    q4 = [x["rss_mb"] for x in series[3 * n // 4:]] or [float("nan")]
    kept = -(-count // round(a.rate / 2))  # the gate keeps every (rate / 2)-th stamp
    lost = expected - s.frames_received  # before the node saw them: the DDS reader queue (image_depth)
    checks = {
        "node_alive": alive,
        "counters_add_up": s.frames_processed + s.frames_dropped + s.decode_errors == s.frames_received,
        "lost_before_the_node_under_1_percent": 0 <= lost <= 0.01 * expected,
        "decisions_keep_pace": s.frames_processed >= 0.95 * kept + (burst["done"] if burst else 0),
        "rss_bounded": max(q4) <= 1.1 * max(q2) + 50,
        "latency_bounded": (_p95([x for _, x in last]) <= 2 * _p95([x for _, x in first]) + 0.5)
        if len(lat) >= 4 else True,
    }
    return {"config": vars(a) | {"burst": a.burst}, "camera": cam_done, "burst": burst, "checks": checks,
            "final_stats": {k: getattr(s, k) for k in ("frames_received", "frames_processed",
                                                       "frames_dropped", "decode_errors", "frames_caught_up")},
            "kept_by_gate": kept, "published": expected, "lost_before_node": lost, "guidance": len(lat),
            "latency_p95_first_s": _p95([x for _, x in first]),
            "latency_p95_last_s": _p95([x for _, x in last]), "rss_mb_max": max(x["rss_mb"] for x in series),
            "series": series, "latency": lat}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["series"]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
    ax[0].plot([x["t"] for x in s], [x["rss_mb"] for x in s])
    ax[0].set(title="assistant RSS (node + model process)", xlabel="s", ylabel="MB")
    ax[1].plot([x["t"] for x in s], [x["received"] for x in s], label="received")
    ax[1].plot([x["t"] for x in s], [x["processed"] for x in s], label="processed (2 FPS gate)")
    ax[1].set(title="frames", xlabel="s", yscale="log")
    ax[1].legend()
    lat = result["latency"]
    if lat:
        t0 = lat[0][0]
        ax[2].plot([t - t0 for t, _ in lat], [x for _, x in lat], ".")
    ax[2].set(title="guidance latency (frame receipt → published)", xlabel="stream s", ylabel="s")
    c = result["config"]
    fig.suptitle(f"soak: {c['width']}x{c['height']} rgb8 at {c['rate']:g} FPS, {c['seconds']:g} s, "
                 f"model {c['model']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--model", default="embedded")
    p.add_argument("--burst", type=int, nargs=3, metavar=("W", "H", "N"), default=[7680, 4320, 4],
                   help="afterwards, N frames of W x H at 2 FPS (default: 4 frames of 8K); 0 0 0: none")
    p.add_argument("--domain", type=int, default=57)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "soak")
    a = p.parse_args(argv)
    from proassist_ros.utils import netns

    try:
        netns.reexec_isolated(netns.python_argv())
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(a)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    (a.out / "soak.json").write_text(json.dumps(result, indent=1, default=str))
    plot(result, a.out / "soak.png")
    print(json.dumps({k: result[k] for k in ("checks", "final_stats", "kept_by_gate", "published",
                                             "lost_before_node", "guidance",
                                             "latency_p95_first_s", "latency_p95_last_s", "rss_mb_max",
                                             "camera", "burst")}, indent=1))
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
