"""``proassist replay BAG [--rate r]``: evaluate the running nodes live, on a dataset bag.

The nodes must already run (``proassist bringup --use-sim-time true ...``). The replay:

1. waits for the assistant (its latched TaskState) and reads its parameters (fps, θ, transport);
2. starts /clock (:class:`~proassist_ros.ros.player.SimClock`) ``preroll_s`` before the bag,
   gives the bag's Task on the task topic (latched, ``reset_context`` forced true: a fresh session
   and stamp grid, as offline evaluation starts; the ``set_task`` service when nothing subscribes
   the topic), and waits until TaskState shows the new session with that goal;
3. publishes the camera topic the node subscribes (reliable, as ``ros2 bag play`` offers a
   dataset bag) and the user utterances at the bag's pace × ``rate`` — never the references;
4. records the session's Guidance and TaskState, waits until the node's stats account for every
   frame (the clock keeps running, so a sim-time node keeps publishing them), writes
   ``DIR/outputs`` (MCAP) and scores it with :mod:`proassist_ros.eval.live` into
   ``DIR/metrics.json`` (keys as ``proassist eval``'s).

Live and offline agree frame for frame only while no kept frame waits for the worker: a waiting
frame may be fed as catch-up (silent) or see a user turn early. The replay measures this (the
slowest frame against the wall time between kept frames) and reports ``behind``: lower the rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proassist_ros.constants import NAMESPACE, NS_PER_S, USER_UTTERANCE, absolute


@dataclass
class ReplaySettings:
    rate: float = 1.0
    namespace: str = NAMESPACE
    out: Path = Path("replay_output")
    window: str = "default"
    window_s: tuple[float, float] | None = None
    fps: float | None = None          # None: the node's fps parameter
    timeout_s: float = 60.0           # bound of each wait: the node, the task, the last frames
    preroll_s: float = 2.0            # /clock runs this long (bag time) before the first frame
    camera_topic: str | None = None   # the bag's camera topic (None: the readers' choice)

    def topic(self, name: str) -> str:
        """The node's relative ``name`` resolved in the replay's namespace."""
        return absolute(name, self.namespace)


def replay(bag: Path, settings: ReplaySettings, context: Any = None) -> dict:
    """Play ``bag`` to the running nodes, record, score; writes and returns metrics.json's dict."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from proassist_ros.data.dataset_read import read_episode_base

    bag = Path(bag)
    read_episode_base(bag, settings.camera_topic)  # a bad bag fails here, named, before any DDS traffic
    node = rclpy.create_node("proassist_replay", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name="replay-spin", daemon=True)
    spinner.start()
    try:
        return _run(node, bag, settings)
    finally:
        stop.set()
        spinner.join(timeout=10)
        executor.shutdown()
        node.destroy_node()


def _run(node: Any, bag: Path, settings: ReplaySettings) -> dict:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from proassist_ros.data.bags import UTTERANCE_TOPIC, read_bag
    from proassist_ros.eval.live import expected_frames, score_outputs
    from proassist_ros.eval.metrics import window_for
    from proassist_ros.eval.scoring import NO_TASK_NOTE
    from proassist_ros.ros import replay_io as io
    from proassist_ros.ros.player import SimClock, bag_topics, get_message, header_stamp_ns, pace, topic_qos

    started = time.monotonic()
    types = bag_topics(bag)
    rec = io.Recorder(node, settings)
    first_state = io.wait_for(lambda: rec.states[-1] if rec.states else None, settings.timeout_s,
                              f"the assistant's TaskState on {rec.topics['task_state']} (are the nodes "
                              "running, active, in this ROS domain and namespace?)")
    params = io.node_parameters(node, settings)
    fps = settings.fps or float(params.get("fps", 2.0))
    src, dst, notes = io.camera_plan(types, params, bag, settings.camera_topic)
    cam = node.create_publisher(get_message(types[src]), dst, topic_qos(types[src], reliable_images=True))
    utt = node.create_publisher(String, settings.topic(USER_UTTERANCE),
                                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    camera_qos = io.wait_camera_matched(node, cam, dst, settings.timeout_s)
    if UTTERANCE_TOPIC in types:
        io.wait_for(lambda: utt.get_subscription_count() > 0, settings.timeout_s,
                    f"the assistant's subscription on {settings.topic(USER_UTTERANCE)}")
    topics = [src, UTTERANCE_TOPIC]
    first = next(read_bag(bag, topics), None)
    if first is None:
        raise ValueError(f"{bag}: no messages on {src}")
    first_ns = first.t_ns
    clock = SimClock(node)
    clock.start(first_ns - round(settings.preroll_s * NS_PER_S), settings.rate)
    try:
        session, task_via = io.give_task(node, rec, settings, bag, first_state.session_id)
        io.wait_subscription_matched(rec, settings.timeout_s)  # stats tick on /clock: after start
        if task_via.startswith("reset"):
            notes.append(NO_TASK_NOTE)
        offset = max(0, clock.now_ns() - first_ns)  # the task took longer than the pre-roll
        delay = clock.wall_at(first_ns + offset) - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pre-roll: /clock runs up to the bag's start (sim-time stats)
        base_msg = rec.stats[-1] if rec.stats else None
        base = io.counts(base_msg) if base_msg is not None else (0, 0, 0, 0)
        stats_mark = len(rec.stats)
        sent: list[int] = []

        def publish(m: Any) -> None:
            if m.topic == src:
                cam.publish(m.raw)
                sent.append(header_stamp_ns(m.raw))
            else:  # not wait_for_all_acked: Fast DDS acks on its heartbeat (up to seconds), and
                utt.publish(m.raw)  # the frames held up meanwhile would go out in a burst and
                # overflow the node's camera queue (image_depth): measured, 5 of 80 frames lost

        pace(read_bag(bag, topics), lambda t: clock.wall_at(t + offset), publish)
        final = io.settle(rec, base, len(sent), settings.timeout_s)
    finally:
        clock.stop()
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    outputs = rec.write(out / "outputs", session)
    window = tuple(settings.window_s) if settings.window_s else window_for(settings.window)
    scored = score_outputs(bag, outputs, window_s=window, fps=fps, topic=rec.topics["guidance"],
                           session_id=session, camera_topic=src)
    guidance = [g for g in rec.guidance if g.session_id == session]
    delta = [a - b for a, b in zip(io.counts(final), base, strict=True)]
    live = {
        "session_id": session, "task_via": task_via, "camera_topic": dst, "bag_camera_topic": src,
        "camera_qos": camera_qos, "rate": settings.rate, "fps": fps, "frames_sent": len(sent),
        "frames_expected": expected_frames(sent, fps), "frames_received": delta[0],
        "frames_processed": delta[1], "decode_errors": delta[3],
        **_slowest_frame(rec.stats[stats_mark:], [g.latency_s for g in guidance]),
        "kept_frame_wall_period_s": 1.0 / fps / settings.rate,
        "stats_before": list(base) if base_msg is not None else None, "stats_after": list(io.counts(final)),
    }
    live["behind"] = live["slowest_frame_s"] >= live["kept_frame_wall_period_s"]
    if base_msg is None:
        notes.append("no stats before the first frame: counts assume the node had received no frames")
    metrics = {"mode": "live", "bag": str(bag), **scored,
               "settings": {"rate": settings.rate, "namespace": settings.namespace, "fps": fps,
                            "window": settings.window, "window_seconds": list(window),
                            "preroll_s": settings.preroll_s},
               "node_parameters": params, "live": live,
               "problems": _problems(live, sorted(g.seq for g in guidance)), "notes": notes,
               "wall_s": time.monotonic() - started}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def _slowest_frame(stats: list[Any], guidance_latencies: list[float]) -> dict:
    """The run's slowest frame (receipt → outputs published) and its stages, from the node's stats.

    Each AssistantStats carries its window's slowest frame stage by stage (runtime/stages.py);
    the run's is the one with the largest ``latency_max_s``. Guidance latencies cover a node
    that publishes no stage timings (an older version).
    """
    worst = max(stats, key=lambda m: m.latency_max_s, default=None)
    stages: dict[str, float] = {}
    if worst is not None and worst.latency_max_s > 0:
        stages = {n: round(float(v), 4) for n, v in zip(worst.stage_names, worst.slowest_frame_stages_s,
                                                         strict=False)}
    slowest = max([worst.latency_max_s if worst is not None else 0.0, *guidance_latencies], default=0.0)
    return {"slowest_frame_s": float(slowest), "slowest_frame_stages_s": stages,
            "slowest_stage": max(stages, key=stages.get) if stages else "",
            "slowest_frame": worst.slowest_frame if stages else ""}


def _problems(live: dict, seqs: list[int]) -> list[str]:
    """Why this run may not equal an offline run of the same bag (empty: it should)."""
    problems = []
    if live["frames_received"] < live["frames_sent"]:
        problems.append(f"{live['frames_sent'] - live['frames_received']} of {live['frames_sent']} frames "
                        f"did not reach the assistant (camera subscription {live['camera_qos']})")
    if live["frames_processed"] != live["frames_expected"]:
        problems.append(f"the assistant processed {live['frames_processed']} frames; the {live['fps']:g} FPS "
                        f"stamp grid keeps {live['frames_expected']}")
    if live["decode_errors"]:
        problems.append(f"{live['decode_errors']} frames failed to decode")
    if live["behind"]:
        problems.append(f"the assistant fell behind: its slowest frame took {live['slowest_frame_s']:.3f} s"
                        + (f" (mostly {live['slowest_stage']}; {live['slowest_frame']})"
                           if live["slowest_frame"] else "")
                        + f", kept frames came {live['kept_frame_wall_period_s']:.3f} s apart, so frames "
                        "waited (catch-up feeds them silently; a user turn may enter early): use a lower "
                        "--rate or a faster rig (docs/performance.md)")
    if seqs != list(range(len(seqs))):
        problems.append(f"Guidance seq numbers {seqs} have gaps: utterances were lost on the way")
    return problems


def print_summary(m: dict, out: Path) -> None:
    live = m["live"]
    print(f"{m['video_id']}: {m['utterances']} utterances; {live['frames_processed']}/"
          f"{live['frames_expected']} frames processed; slowest frame {live['slowest_frame_s']:.3f} s "
          f"(kept frames {live['kept_frame_wall_period_s']:.3f} s apart); outputs in {out}/")
    if m.get("not_scored_reason"):
        print(m["not_scored_reason"])
    if m["overall"]:
        o = m["overall"]
        print(f"P {o['precision']:.3f}  R {o['recall']:.3f}  F1 {o['f1']:.3f}  (matched {o['matched']}, "
              f"missed {o['missed']}, redundant {o['redundant']})")
    for line in m["notes"]:
        print(f"note: {line}")
    for problem in m["problems"]:
        print(f"WARNING: {problem}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proassist replay", description=(
        "Replay a dataset bag to the running nodes (start them with use_sim_time), record their "
        "outputs and score them like `proassist eval` (docs/eval.md)."))
    p.add_argument("bag", type=Path, help="a dataset bag (directory, .mcap or .db3)")
    p.add_argument("--rate", type=float, default=1.0, help="replay speed: bag seconds per wall second")
    p.add_argument("--out", type=Path, default=Path("replay_output"), help="output directory")
    p.add_argument("--namespace", default=NAMESPACE, help="the nodes' namespace")
    p.add_argument("--window", default="default", help="matching window by dataset name (as eval)")
    p.add_argument("--window-s", help="matching window in seconds LEFT,RIGHT (overrides --window)")
    p.add_argument("--fps", type=float, help="the node's fps (default: read from the node)")
    p.add_argument("--timeout-s", type=float, default=60.0, help="bound of each wait on the nodes")
    p.add_argument("--preroll-s", type=float, default=2.0, help="/clock before the first frame (bag s)")
    p.add_argument("--camera-topic", help="the bag's camera topic (default: /camera/image_raw or its "
                                          "/compressed, else the bag's only image topic); it is published "
                                          "on the topic the assistant subscribes")
    return p


def main(argv: list[str] | None = None) -> int:
    """0: a clean run; 1: it ran, with problems (listed, metrics written); 2: it could not run."""
    args = build_parser().parse_args(argv)
    try:
        if not (args.rate > 0 and args.timeout_s > 0 and args.preroll_s >= 0):
            raise ValueError("--rate and --timeout-s must be > 0 and --preroll-s >= 0")
        window_s = None
        if args.window_s:
            window_s = tuple(float(x) for x in args.window_s.split(","))
            if len(window_s) != 2:
                raise ValueError(f"--window-s wants LEFT,RIGHT, e.g. -2,4; got {args.window_s!r}")
        settings = ReplaySettings(rate=args.rate, namespace=args.namespace, out=args.out, window=args.window,
                                  window_s=window_s, fps=args.fps, timeout_s=args.timeout_s,
                                  preroll_s=args.preroll_s, camera_topic=args.camera_topic)
        from proassist_ros.data.dataset_read import read_episode_base

        read_episode_base(args.bag, args.camera_topic)  # a bad bag: an error before any DDS participant starts
    except (FileNotFoundError, ValueError) as exc:
        print(f"proassist replay: error: {exc}", file=sys.stderr)
        return 2
    from proassist_ros.ros.dds_profile import apply_default_profile

    apply_default_profile()
    import rclpy

    rclpy.init()
    try:
        metrics = replay(args.bag, settings)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"proassist replay: error: {exc}", file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
    print_summary(metrics, settings.out)
    return 1 if metrics["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
