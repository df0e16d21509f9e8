"""``bench/results/summary.json``: every key of issue 17 from one run, and the docs table.

``collect`` measures the keys (bench_keys, bench_quality, bench_ros) on one loaded model;
``write`` stores the summary; ``refresh_docs`` rewrites the table between the markers of
docs/performance.md's "Benchmark summary" section. A key that could not be measured is null with
an entry in ``notes`` saying why — never a guess.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from proassist_ros.eval import bench_keys as bk

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
QUICK_BAG = "test_0005_assemble_lamp"  # the shortest sample bag (65.5 s)
ROS_BAG = "test_0004_take_medicine"    # the demo's bag (74 s)
QUICK_QUALITY_S = 20.0                  # QUICK: the int8 runs use the bag's first 20 s
QUICK_ROS_S = 15.0                      # QUICK: the ROS run replays the bag's first 15 s (2 replies)
QUICK_IPS_LIMIT = 256                   # QUICK: the IPS stall runs reach their summary at L = 256

# key → (target, how it is read) for the docs table; the order of summary.json's keys
KEYS: dict[str, tuple[str, str]] = {
    "realtime_factor_silent_100": ("≥ 15", "silent frames/s ÷ 2 at ~100 tokens of context (vision + LLM; "
                                   "int8, the node's CPU default; fp32 in details.realtime_fp32)"),
    "realtime_factor_silent_1000": ("≥ 10", "silent frames/s ÷ 2 at ~1000 tokens"),
    "realtime_factor_speaking": ("–", "speaking frames/s ÷ 2 (replies ≤ 40 tokens)"),
    "reply_ms_per_token_fp32": ("≤ 20", "ms per greedy reply token, 800-token cache, fp32"),
    "reply_ms_per_token_int8": ("≤ 20", "the same, `quantize: int8`"),
    "decision_agreement_int8": ("≥ 0.99", "teacher-forced LLM calls on the same side of θ, int8 vs fp32"),
    "f1_diff_int8": ("≤ 0.01", "paper's F1, free-running int8 − fp32 (near-tie divergence, see text)"),
    "p95_ratio_last_first": ("≤ 1.2", "frame step p95, last window ÷ first, 1-hour stream, IPS"),
    "rss_ratio_last_first": ("≤ 1.05", "peak RSS, last window ÷ first"),
    "kv_speedup_1000": ("–", "recompute 1000 tokens ÷ cached frame step"),
    "kv_speedup_3500": ("≥ 20", "recompute 3500 tokens ÷ cached frame step"),
    "ros_e2e_p50_s": ("≤ 0.25", "frame stamp → Guidance in another process (DDS), p50, s"),
    "ros_e2e_p95_s": ("–", "the same, p95"),
    "ips_stall_s": ("≤ 0.5", "longest wait of a frame for its decision around an IPS summary (catch-up "
                    "on, the summary in the background as the node writes it; int8), s"),
    "ips_stall_sync_s": ("–", "the same with the paper's synchronous IPS (`ips_background: false`), s"),
    "batched_speedup_4": ("≥ 2", "4 wearers: silent frames/s in one batched forward ÷ 4 separate sessions "
                                  "(fp32; the int8 default in details.batched_int8)"),
}
SIZES = {  # full run, QUICK run
    "silent_frames": (30, 8), "speaking_frames": (10, 3), "reply_tokens": (64, 16), "kv_reps": (3, 1),
    "hour_frames": (7200, 160), "hour_window": (1200, 26), "frame_cycle": (64, 16), "batch_rounds": (12, 3),
}


def sizes(quick: bool, hour_frames: int | None = None) -> dict[str, int]:
    s = {k: v[1 if quick else 0] for k, v in SIZES.items()}
    if hour_frames:  # a reduced stream keeps the full run's proportion: windows of 1/6
        s.update(hour_frames=hour_frames, hour_window=max(hour_frames // 6, 2))
    return s


def check_inputs(args) -> None:
    """Refuse a bad ``--model``, ``--ros-bag`` or ``--agreement-bags`` before minutes of work."""
    from proassist_ros.data.bags import check_bag
    from proassist_ros.data.dataset_read import bag_info
    from proassist_ros.model.spec import check_spec

    check_spec(args.model)
    bags = list(agreement_bags(args.agreement_bags, args.quick))
    if args.ros_bag and not args.skip_ros:
        bags.append(ros_bag(args.ros_bag))
    for bag in bags:
        bag_info(check_bag(bag))  # readable to the end (a truncated bag fails here, named)


def ros_bag(name: str) -> Path:
    """A path, or the name of a shipped sample bag."""
    bag = Path(name)
    return bag if bag.exists() else SAMPLES / name


def agreement_bags(given: list[str] | None, quick: bool) -> list[Path]:
    if given:
        return [Path(b) for b in given]
    return [SAMPLES / QUICK_BAG] if quick else sorted(p for p in SAMPLES.glob("test_*") if p.is_dir())


def collect(model, int8_model, spec: str, defaults: Mapping[str, Any], args, hour: dict, out_dir: Path,
            log=print) -> dict:
    """Every key; ``hour`` is the already measured ``bench_keys.hour_stream`` result."""
    sz = sizes(args.quick, args.hour_frames)
    frames = bk.frame_cycle(sz["frame_cycle"])
    notes: dict[str, str] = {}
    res: dict[str, Any] = {"stage_s": {}}
    current: list = ["", time.perf_counter()]

    def stage(name: str) -> None:  # each stage's wall time goes into details.stage_s
        now = time.perf_counter()
        if current[0]:
            res["stage_s"][current[0]] = round(now - current[1], 1)
        current[:] = [name, now]
        if name:
            log(f"[bench] summary: {name}")

    # the keys: the node's CPU default (quantize auto = int8); fp32 beside it for the ratio
    stage("realtime factors (int8, fp32)")
    res.update(bk.realtime_factors(int8_model, defaults, frames, sz["silent_frames"], sz["speaking_frames"], 40))
    if not args.quick:  # fp32 beside the keys, for the docs' ratio
        res["realtime_fp32"] = bk.realtime_factors(model, defaults, frames, sz["silent_frames"],
                                                   sz["speaking_frames"], 40)
    stage("reply ms per token (fp32, int8)")
    rounds = 1 if args.quick else 3  # alternating rounds, the keys are round-medians (a shared machine drifts)
    tok = bk.reply_ms_per_token_models(model, int8_model, 800, sz["reply_tokens"], rounds)
    if not args.quick:  # the A/Bs beside the keys: int8 kernels, helper threads
        tok["int8_by_kernel"] = bk.reply_ms_per_token_by_kernel(int8_model, 800, sz["reply_tokens"], rounds)
        tok["int8_by_native_threads"] = bk.reply_ms_per_token_by_threads(int8_model, 800, sz["reply_tokens"],
                                                                          rounds=rounds)
    res.update(reply_ms_per_token_fp32=tok["fp32"]["ms_per_token"], reply_ms_per_token_int8=tok["int8"]["ms_per_token"],
               reply_tokens=tok)
    stage("KV cache speed-up")
    chunk = bk.frame_chunk_tokens(model, defaults, frames)
    for n in (1000, 3500):
        kv = bk.kv_speedup(model, n, chunk, sz["kv_reps"])
        res[f"kv_speedup_{n}"], res[f"kv_{n}"] = kv["speedup"], kv
    stage("many wearers: batched sessions")
    batched = bk.batched_throughput(model, defaults, frames, (4,) if args.quick else (1, 2, 4, 8),
                                    sz["batch_rounds"])
    res.update(batched_speedup_4=batched[4]["speedup"], batched=batched)
    if not args.quick:  # beside the key (fp32, as it was defined): the node's CPU default, int8
        res["batched_int8"] = bk.batched_throughput(int8_model, defaults, frames, (4, 8), sz["batch_rounds"])
    bags = agreement_bags(args.agreement_bags, args.quick)
    stage(f"int8 vs fp32 on {len(bags)} bag(s)")
    res.update(_quality(model, int8_model, defaults, bags, args.quality_max_s, notes))
    res.update(p95_ratio_last_first=hour["p95_ratio_last_first"], rss_ratio_last_first=hour["rss_ratio_last_first"],
               hour_stream={k: v for k, v in hour.items() if k not in ("rss", "context")})
    if hour["frames"] < 7200:
        notes["p95_ratio_last_first"] = (f"reduced stream: {hour['frames']} frames, windows of "
                                         f"{hour['window_frames']} frames (full: 7200 frames, 10-minute windows)")
    stage("IPS stall with catch-up (background, synchronous; int8)")
    ips_limit = min(args.context_limit, QUICK_IPS_LIMIT) if args.quick else args.context_limit
    after = 3 if args.quick else 8  # backlogs decided after the first summary
    stall = bk.ips_stall(int8_model, defaults, frames, ips_limit, args.reply_max_tokens, after=after)
    sync = bk.ips_stall(int8_model, defaults, frames, ips_limit, args.reply_max_tokens, after=after,
                        background=False)
    res.update(ips_stall_s=stall["ips_stall_s"], ips_stall_sync_s=sync["ips_stall_s"], ips_stall=stall,
               ips_stall_sync=sync)
    if stall["ips_stall_s"] is None:
        notes["ips_stall_s"] = f"no IPS summary within {stall['frames']} frames at L={ips_limit}"
    elif ips_limit != args.context_limit:
        notes["ips_stall_s"] = f"reduced run: the summary comes at L={ips_limit} (full: L={args.context_limit})"
    if args.skip_ros:
        res.update(ros_e2e_p50_s=None, ros_e2e_p95_s=None)
        notes["ros_e2e_p50_s"] = notes["ros_e2e_p95_s"] = "not measured: --skip-ros"
    else:
        part = f"the first {args.ros_max_s:g} s of " if args.ros_max_s else ""
        stage(f"ROS end-to-end (bringup + replay of {part}{args.ros_bag} at {args.ros_rate:g}x)")
        ros = _ros(spec, args, out_dir)
        res.update(ros)
        if ros["ros_e2e_p50_s"] is None:
            notes["ros_e2e_p50_s"] = notes["ros_e2e_p95_s"] = ros["ros_e2e"]["note"]
    stage("")
    return {**{k: res.get(k) for k in KEYS}, "notes": notes,
            "details": {k: v for k, v in res.items() if k not in KEYS}}


def _quality(model, int8_model, defaults, bags, max_s, notes) -> dict:
    from proassist_ros.eval.bench_quality import int8_quality

    try:
        q = int8_quality(model, int8_model, defaults, bags, max_s)
    except (OSError, ValueError) as exc:  # a missing or unreadable bag
        notes["decision_agreement_int8"] = notes["f1_diff_int8"] = f"not measured: {exc}"
        return {"decision_agreement_int8": None, "f1_diff_int8": None}
    notes["f1_diff_int8"] = ("free-running fp32 and int8 runs: greedy replies diverge at near-ties, so "
                             "on few bags this difference is mostly that divergence (docs/performance.md)")
    if q["f1_diff_int8"] is None:
        notes["f1_diff_int8"] = "no spoken reference turns in the bags: F1 undefined"
    return q


def _ros(spec: str, args, out_dir: Path) -> dict:
    from proassist_ros.eval.bench_ros import head_bag, measure

    bag = ros_bag(args.ros_bag)
    if args.ros_max_s:
        bag = head_bag(bag, args.ros_max_s, out_dir / "ros_e2e_bag")
    return measure(spec, bag, out_dir / "ros_e2e", rate=args.ros_rate, timeout_s=args.ros_timeout_s)


def write(path: Path, keys: dict, *, spec: str, args, facts: dict, wall_s: float) -> dict:
    summary = {**{k: keys[k] for k in KEYS}, "notes": keys["notes"], "quick": bool(args.quick),
               "model": {"spec": spec, "settings": keys.get("settings", {})}, "machine": facts,
               "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "wall_s": round(wall_s, 1),
               "details": keys["details"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    return summary


START, END = "<!-- bench-summary:start -->", "<!-- bench-summary:end -->"


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def table(summary: dict) -> str:
    m = summary["machine"]
    lines = [START, f"`make bench`{' QUICK=1' if summary['quick'] else ''} of {summary['date']}: model "
             f"`{summary['model']['spec']}`, {m['cpu_model']}, {m['usable_cores']} usable cores, "
             f"{m['torch_threads']} torch threads; {summary['wall_s']:.0f} s "
             "(`bench/results/summary.json`, written by the run).", "",
             "| key | value | target | what |", "|---|---|---|---|"]
    for k, (target, what) in KEYS.items():
        note = summary["notes"].get(k)
        lines.append(f"| `{k}` | {_fmt(summary[k])} | {target} | {what}{f' — {note}' if note else ''} |")
    return "\n".join([*lines, END])


def refresh_docs(doc: Path, summary: dict) -> bool:
    """Replace the table between the markers; False (nothing written) when they are missing."""
    text = doc.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    doc.write_text(head + table(summary) + rest.split(END, 1)[1])
    return True
