"""`make demo`: the whole loop on the embedded model and the shipped sample stream, over real DDS.

1. Renders the synthetic "make tea" sample stream (data/synthetic.py) into an MCAP bag: 640×480
   rgb8 at 10 Hz plus one spoken user question.
2. Starts `proassist bringup` (assistant + TTS nodes) in a separate process, waits until the
   assistant's lifecycle state is active, and gives it the task with /proassist/set_task.
3. Replays the bag onto /camera/image_raw and /proassist/user_utterance at recorded speed.
4. Records /proassist/guidance and /proassist/task_state; the TTS node writes one WAV each.
5. Writes demo_output/: guidance.jsonl, task_state.json, timeline.png, wav/, bringup.log.

Everything runs in a private network namespace (only loopback), so no DDS packet leaves the
machine. The embedded model's vision side is UNTRAINED until issue 5/8: what it says is not
meaningful yet; the demo shows the system working end to end, not the model's quality.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from proassist_ros.data.synthetic import GOAL, RECIPE, STEP_SECONDS, stream
from proassist_ros.utils import netns

QUESTION = (12.0, "What should I do next?")


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _params(out: Path, model: str) -> Path:
    path = out / "demo_params.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n"
        f"    model: {json.dumps(model)}\n"
        "    fps: 2.0\n    theta: 0.3\n    context_strategy: ips\n"
        f"    output_dir: {json.dumps(str((out / 'wav').resolve()))}\n"
        "    reply_max_tokens: 40\n"
        # bag stamps are from the recording, so an age check against "now" would drop everything
        "    play_audio: false\n    max_age_s: 0.0\n")
    return path


def _make_bag(out: Path, seconds: float) -> Path:
    from proassist_ros.data.bags import write_bag

    bag = out / "sample_bag"
    if not (bag / "metadata.yaml").exists():
        _say(f"writing the sample bag ({seconds:.0f} s, 640x480 rgb8 @ 10 Hz) -> {bag}")
        import shutil

        shutil.rmtree(bag, ignore_errors=True)
        write_bag(bag, stream(seconds, fps=10.0), [QUESTION])
    return bag


def run(args: argparse.Namespace) -> int:
    try:
        netns.reexec_isolated(netns.python_argv())
    except RuntimeError as exc:
        print(f"proassist demo: {exc}", file=sys.stderr)
        return 1
    from proassist_ros.ros.dds_profile import apply_default_profile

    apply_default_profile()
    out = Path(args.output).resolve()
    (out / "wav").mkdir(parents=True, exist_ok=True)
    for old in (out / "wav").glob("*.wav"):
        old.unlink()
    seconds = sum(STEP_SECONDS)
    bag = _make_bag(out, seconds)
    params = _params(out, args.model)
    log = open(out / "bringup.log", "w")
    _say(f"starting `proassist bringup` (model={args.model}); log: {out / 'bringup.log'}")
    proc = subprocess.Popen([sys.executable, "-m", "proassist_ros.cli", "bringup", "--params-file", str(params)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        return _drive(out, bag, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def _drive(out: Path, bag: Path, proc: subprocess.Popen) -> int:
    import rclpy
    from lifecycle_msgs.srv import GetState
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool

    from proassist_ros.msg import AssistantStats, Guidance, TaskState
    from proassist_ros.ros.player import play
    from proassist_ros.srv import SetTask

    rclpy.init()
    node = rclpy.create_node("proassist_demo")
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    guidance: list[Guidance] = []
    state: dict[str, object] = {}
    node.create_subscription(Guidance, "/proassist/guidance", guidance.append, 50)
    node.create_subscription(TaskState, "/proassist/task_state", lambda m: state.__setitem__("task", m), latched)
    node.create_subscription(AssistantStats, "/proassist/stats", lambda m: state.__setitem__("stats", m), 10)
    node.create_subscription(Bool, "/proassist/tts/speaking", lambda m: state.__setitem__("speaking", m.data),
                             latched)
    try:
        get_state = node.create_client(GetState, "/proassist/assistant/get_state")
        deadline = time.monotonic() + 600
        label = ""
        while label != "active":
            if proc.poll() is not None or time.monotonic() > deadline:
                _say(f"bringup did not become active (exit code {proc.poll()}); see {out / 'bringup.log'}")
                return 1
            if get_state.wait_for_service(timeout_sec=1.0):
                try:  # the node answers lifecycle queries only between transitions
                    label = get_state.call(GetState.Request(), timeout_sec=5.0).current_state.label
                except TimeoutError:
                    label = "configuring"
            if label != "active":
                _say(f"waiting for the assistant (state: {label or 'starting'}; the first run converts the model)")
                time.sleep(2.0)
        set_task = node.create_client(SetTask, "/proassist/set_task")
        set_task.wait_for_service(timeout_sec=30)
        resp = set_task.call(SetTask.Request(goal=GOAL, knowledge=RECIPE, reset_context=True), timeout_sec=30)
        _say(f"set_task: {resp.message} (session {resp.session_id})")

        _say(f"replaying {bag.name} at 1x (camera 10 Hz, the assistant samples 2 fps)")
        n = play(node, bag)
        _say(f"replayed {n} messages; waiting for the assistant to finish the last frames")
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 4.0 and time.monotonic() < deadline:
            done = state.get("stats").frames_processed if state.get("stats") else -1
            if done != last:
                last, stable_since = done, time.monotonic()
            time.sleep(0.5)
        t_end = time.monotonic() + 60  # let the TTS node finish its queue
        while (state.get("speaking") or len(list((out / "wav").glob("*.wav"))) < len(guidance)) \
                and time.monotonic() < t_end:
            time.sleep(0.5)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    return _report(out, guidance, state)


def _report(out: Path, guidance, state) -> int:
    t0 = 1_700_000_000.0
    rows = [dict(t=m.header.stamp.sec + m.header.stamp.nanosec / 1e9 - t0, seq=m.seq, text=m.text, kind=m.kind,
                 talk_probability=round(m.talk_probability, 4), step_index=m.step_index,
                 latency_s=round(m.latency_s, 3)) for m in guidance]
    with open(out / "guidance.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    task = state.get("task")
    stats = state.get("stats")
    if task is not None:
        (out / "task_state.json").write_text(json.dumps(dict(
            goal=task.goal, status=task.status, steps=list(task.steps), current_step_index=task.current_step_index,
            completed_steps=list(task.completed_steps), progress=task.progress,
            progress_summary=task.progress_summary, elapsed_s=task.elapsed_s), indent=1))
    wavs = sorted((out / "wav").glob("*.wav"))
    _plot(out, rows)
    print("\n=== transcript (stream time, spoken by the TTS node) ===")
    print(f"  {QUESTION[0]:6.1f}s  USER: {QUESTION[1]}")
    for r in rows:
        text = " ".join(r["text"].split())[:100]
        print(f"  {r['t']:6.1f}s  ASSISTANT [{r['seq']}] (p_talk {r['talk_probability']:.2f}): {text}")
    if stats is not None:
        print(f"\nframes received {stats.frames_received}, processed {stats.frames_processed}, "
              f"dropped {stats.frames_dropped}, decode errors {stats.decode_errors}; inference p50 "
              f"{stats.inference_time_p50_s * 1e3:.0f} ms, p95 {stats.inference_time_p95_s * 1e3:.0f} ms")
    print(f"{len(rows)} utterances, {len(wavs)} WAV files in {out / 'wav'}")
    print(f"outputs: {out}/guidance.jsonl, task_state.json, timeline.png, bringup.log")
    print("NOTE: the embedded model's vision tower and projector are untrained until issue 5/8, so "
          "what it says is not meaningful yet; this demo shows the real loop end to end.")
    ok = stats is not None and stats.frames_processed > 0
    return 0 if ok else 1


def _plot(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 3))
    acc = 0.0
    for i, d in enumerate(STEP_SECONDS):
        ax.axvspan(acc, acc + d, color=f"C{i}", alpha=0.15)
        ax.text(acc + 0.2, 1.02, f"step {i + 1}", fontsize=8)
        acc += d
    ax.axvline(QUESTION[0], color="k", ls="--", lw=1)
    ax.text(QUESTION[0] + 0.2, 0.9, "user question", fontsize=8)
    ax.scatter([r["t"] for r in rows], [r["talk_probability"] for r in rows], color="tab:red", zorder=3)
    ax.set(xlim=(0, acc), ylim=(0, 1.1), xlabel="stream time (s)", ylabel="P(talk) of utterances",
           title="proassist demo: when the assistant spoke")
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=100)
