"""`make demo`: the whole loop on the embedded model and a shipped sample bag, over real DDS.

1. Starts `proassist bringup` (assistant + TTS nodes, sim time) in a separate process and waits
   until the assistant's lifecycle state is active.
2. `proassist replay` plays a held-out test bag of the task world (samples/, docs/dataset.md) to
   it with /clock: the task on /proassist/task, JPEG frames, the wearer's utterances; it records
   /proassist/guidance and /proassist/task_state to a bag and scores them against the bag's
   reference turns with the paper's metric.
3. The TTS node speaks every utterance into a WAV file.
4. Prints the transcript beside the reference, then the score; writes demo_output/ (replay/
   outputs bag + metrics.json, guidance.jsonl, transcript.txt, timeline.png, wav/, bringup.log).

Everything runs in a private network namespace (only loopback), so no DDS packet leaves the
machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from proassist_ros.constants import DEFAULT_QUANTIZE, absolute
from proassist_ros.data.bags import check_bag
from proassist_ros.data.dataset_read import bag_info, read_episode_base
from proassist_ros.model.spec import check_spec
from proassist_ros.utils import netns

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEFAULT_BAG = "test_0004_take_medicine"


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sample_bag(name: str) -> Path:
    """A bag path, or the name of a shipped sample (samples/ in the source tree or share/)."""
    for candidate in (Path(name), SAMPLES / name, Path(sys.prefix) / "share" / "proassist_ros" / "samples" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no bag {name!r} (a path, or one of {sorted(p.name for p in SAMPLES.glob('test_*'))})")


def _params(out: Path, model: str, quantize: str = DEFAULT_QUANTIZE) -> Path:
    path = out / "demo_params.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n"
        f"    model: {json.dumps(model)}\n"
        f"    quantize: {json.dumps(quantize)}\n"
        "    fps: 2.0\n    theta: -1.0\n    context_strategy: ips\n"  # θ < 0: the model's own
        "    transport: compressed\n"
        f"    output_dir: {json.dumps(str((out / 'wav').resolve()))}\n"
        "    reply_max_tokens: 40\n"
        # bag stamps are from the recording, so an age check against "now" would drop everything
        "    play_audio: false\n    max_age_s: 0.0\n")
    return path


def run(args: argparse.Namespace) -> int:
    try:
        bag = check_bag(sample_bag(args.bag))
        bag_info(bag)  # readable to the end (a truncated bag fails here, named)
        read_episode_base(bag)  # a camera, and text topics of the right types
        check_spec(args.model)
        netns.reexec_isolated(netns.python_argv())
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"proassist demo: {exc}", file=sys.stderr)
        return 1
    from proassist_ros.ros.dds_profile import apply_default_profile

    apply_default_profile()
    out = Path(args.output).resolve()
    (out / "wav").mkdir(parents=True, exist_ok=True)
    for old in (out / "wav").glob("*.wav"):
        old.unlink()
    _say(f"starting `proassist bringup` (model={args.model}, sim time); log: {out / 'bringup.log'}")
    with bringup(out, args.model, getattr(args, "quantize", DEFAULT_QUANTIZE)) as proc:
        return _drive(out, bag, proc, args.rate)


@contextlib.contextmanager
def bringup(out: Path, model: str, quantize: str = DEFAULT_QUANTIZE) -> Iterator[subprocess.Popen]:
    """``proassist bringup`` with the demo's parameters (sim time), its output in OUT/bringup.log;
    stopped with SIGINT (then killed) when the block ends. Also used by the bench's e2e child."""
    params = _params(out, model, quantize)
    with open(out / "bringup.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "proassist_ros.cli", "bringup", "--params-file",
                                 str(params), "--use-sim-time", "true"],
                                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _wait_active(node, proc: subprocess.Popen, out: Path) -> bool:
    from lifecycle_msgs.srv import GetState

    get_state = node.create_client(GetState, absolute("assistant/get_state"))
    deadline, label, said = time.monotonic() + 600, "", 0.0
    while label != "active":
        if proc.poll() is not None or time.monotonic() > deadline:
            _say(f"bringup did not become active (exit code {proc.poll()}); see {out / 'bringup.log'}")
            return False
        if get_state.wait_for_service(timeout_sec=1.0):
            try:  # the node answers lifecycle queries only between transitions: ask often, briefly
                label = get_state.call(GetState.Request(), timeout_sec=1.0).current_state.label
            except TimeoutError:
                label = "configuring"
        if label != "active":
            if time.monotonic() - said >= 5.0:  # a human-facing progress line every 5 s
                _say(f"waiting for the assistant (state: {label or 'starting'}; the first run converts the model)")
                said = time.monotonic()
            time.sleep(0.5)  # polling interval: the replay starts within ~1.5 s of the node's activation
    return True


def _drive(out: Path, bag: Path, proc: subprocess.Popen, rate: float) -> int:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool

    from proassist_ros.ros.replay import ReplaySettings, replay

    rclpy.init()
    node = rclpy.create_node("proassist_demo")
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    speaking: dict[str, bool] = {}
    node.create_subscription(Bool, absolute("tts/speaking"), lambda m: speaking.__setitem__("now", m.data), latched)
    try:
        if not _wait_active(node, proc, out):
            return 1
        _say(f"replaying {bag.name} at {rate:g}x (the assistant samples 2 fps of stream time)")
        metrics = replay(bag, ReplaySettings(rate=rate, out=out / "replay", timeout_s=120.0))
        t_end = time.monotonic() + 60  # let the TTS node finish its queue
        while (speaking.get("now") or len(list((out / "wav").glob("*.wav"))) < metrics["utterances"]) \
                and time.monotonic() < t_end:
            time.sleep(0.5)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    return _report(out, bag, metrics)


def _report(out: Path, bag: Path, m: dict) -> int:
    from proassist_ros.data.dataset_read import read_episode
    from proassist_ros.data.episode import spoken_references

    ep = read_episode(bag)
    preds = [(float(p[0]), str(p[1])) for p in m.get("predictions", [])]
    with open(out / "guidance.jsonl", "w") as f:
        for t, text in preds:
            f.write(json.dumps({"t": round(t, 3), "text": text}) + "\n")
    events = ([(u.t, "USER", u.text) for u in ep.user_turns]
              + [(r.t, f"reference ({r.kind})", r.text) for r in spoken_references(ep)]
              + [(t, "ASSISTANT", text) for t, text in preds])
    lines = [f"{t:7.1f}s  {who:26s} {' '.join(text.split())[:110]}" for t, who, text in sorted(events)]
    (out / "transcript.txt").write_text("\n".join(lines) + "\n")
    _plot(out, ep, preds)
    task = ep.task.goal if ep.task else "(no task)"
    print(f"\n=== {bag.name}: {task} ({ep.meta.task_type}, {ep.meta.duration_s:.0f} s, split {ep.meta.split}) ===")
    print("transcript: what the assistant said (ASSISTANT) beside what the reference says (reference)")
    print("\n".join(lines))
    live = m["live"]
    slowest = live.get("slowest_frame") or f"{live['slowest_frame_s']:.2f} s"
    print(f"\nframes: {live['frames_processed']}/{live['frames_expected']} processed; slowest frame "
          f"(receipt → decision published) {slowest}")
    if m.get("overall"):
        o = m["overall"]
        print(f"score (ProAssist pairwise matching, window {m['settings']['window_seconds']} s): P {o['precision']:.3f}"
              f"  R {o['recall']:.3f}  F1 {o['f1']:.3f}  (matched {o['matched']}, missed {o['missed']}, "
              f"redundant {o['redundant']})")
    for p in m.get("problems", []):
        print(f"note: {p}")
    log = out / "bringup.log"
    if log.exists() and "UNTRAINED" in log.read_text(errors="replace"):
        print("NOTE: the model is UNTRAINED for ProAssist (see bringup.log), so what it says is not "
              "meaningful; this demo shows the real loop end to end.")
    wavs = sorted((out / "wav").glob("*.wav"))
    print(f"{len(preds)} utterances, {len(wavs)} WAV files in {out / 'wav'}")
    print(f"outputs: {out}/transcript.txt, guidance.jsonl, timeline.png, replay/ (outputs bag, metrics.json)")
    return 0 if live["frames_processed"] > 0 else 1


def _plot(out: Path, ep, preds: list[tuple[float, str]]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from proassist_ros.data.episode import spoken_references

    fig = Figure(figsize=(12, 2.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    refs = spoken_references(ep)
    ax.scatter([r.t for r in refs], [2] * len(refs), marker="o", color="tab:blue", label="reference")
    ax.scatter([t for t, _ in preds], [1] * len(preds), marker="s", color="tab:red", label="assistant")
    ax.scatter([u.t for u in ep.user_turns], [0] * len(ep.user_turns), marker="^", color="k", label="user")
    ax.set(yticks=[0, 1, 2], yticklabels=["user", "assistant", "reference"], xlim=(0, ep.meta.duration_s or None),
           ylim=(-0.6, 2.6), xlabel="stream time (s)", title=f"proassist demo: {ep.meta.video_id}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=100)
