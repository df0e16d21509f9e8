"""`make bench`: speed, catch-up and memory of the streaming engine (numbers + plots).

Three measurements on one model (default: the embedded SmolLM2 model, CPU, int8 as the node
runs it there):

1. latency — per-frame step time (vision + LLM), silent vs. speaking frames, vs. context length.
2. catch-up — frames arrive at ``fps`` on a virtual clock driven by the real compute times; an
   IPS summary (up to 512 tokens) takes seconds. Compared: a latest-frame-wins mailbox (depth 1,
   what most ROS ML nodes do) against our catch-up queue (depth N, the backlog goes through
   ``AssistantSession.push_frames`` in one forward). Reported: frames seen, frames lost, decision
   delay (frame arrival → its decision).
3. memory — process RSS and step time over a long stream with IPS at a small context limit
   (``bench_keys.hour_stream``; 7200 frames = 1 hour at 2 FPS unless ``--quick``): once the limit
   is reached, neither may grow with stream length.

Then every key of ``bench/results/summary.json`` (bench_summary.py: realtime factors, reply
speed fp32 / int8, int8 agreement and F1, KV-cache speed-up, IPS stall, ROS end-to-end latency)
and the table of docs/performance.md's "Benchmark summary". ``--quick`` (``make bench QUICK=1``):
the same keys from reduced runs (the first 20 s of one sample bag for int8, the first 15 s of
the shortest sample bag for ROS, 160 frames for the long stream, IPS at L = 256, no fp32 or
kernel A/B beside the keys, ...) in under 3 minutes; it writes no docs table unless ``--docs``
is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from proassist_ros.data.synthetic import GOAL, RECIPE, render
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.config import model_settings
from proassist_ros.model.loader import default_settings
from proassist_ros.utils.cliargs import deprecated_alias


def _frames(n: int, fps: float, size=(240, 320)) -> list[tuple[np.ndarray, float]]:
    return [(render((k + 1) / fps, size), (k + 1) / fps) for k in range(n)]


def bench_latency(model, n: int, theta: float, reply_max_tokens: int, append_eot: bool = False) -> dict:
    s = AssistantSession(model, EngineConfig(theta=theta, step_matcher="none", reply_max_tokens=reply_max_tokens,
                                             append_eot_after_reply=append_eot))
    s.set_task(GOAL, RECIPE)
    rows = []
    for img, stamp in _frames(n, 2.0):
        t0 = time.perf_counter()
        r = s.push_frame(img, stamp)
        rows.append(dict(stamp=stamp, total_s=time.perf_counter() - t0, spoke=r.spoke,
                         ctx=s.context_tokens, vision_s=r.timings.get("vision_s", 0.0)))
    silent = [r["total_s"] for r in rows if not r["spoke"]]
    spoken = [r["total_s"] for r in rows if r["spoke"]]
    return dict(rows=rows, frames=n,
                silent_p50_s=float(np.median(silent)) if silent else None,
                silent_p95_s=float(np.percentile(silent, 95)) if silent else None,
                speaking_p50_s=float(np.median(spoken)) if spoken else None,
                vision_p50_s=float(np.median([r["vision_s"] for r in rows])),
                utterances=len(spoken))


def simulate(model, cfg: EngineConfig, frames, fps: float, depth: int) -> dict:
    """Virtual clock: frames arrive at their stamps, the worker is busy for the real compute time."""
    s = AssistantSession(model, cfg)
    s.set_task(GOAL, RECIPE)
    arrivals = [stamp for _, stamp in frames]
    now, i, lost, delays, newest, events, busiest = 0.0, 0, 0, [], [], 0, 0.0
    while i < len(frames):
        avail = [j for j in range(i, len(frames)) if arrivals[j] <= now]
        if not avail:
            now = arrivals[i]
            continue
        take = avail[-depth:]
        lost += len(avail) - len(take)
        t0 = time.perf_counter()
        results = s.push_frames([frames[j] for j in take])
        dt = time.perf_counter() - t0
        busiest = max(busiest, dt)
        now += dt
        events += sum(bool(r.context_event) for r in results)
        delays += [now - arrivals[j] for j in take]
        newest.append(now - arrivals[take[-1]])  # the frame that may speak: how stale is "now"?
        i = take[-1] + 1
    return dict(depth=depth, frames=len(frames), seen=len(frames) - lost, lost=lost,
                context_events=events, delay_mean_s=float(np.mean(delays)),
                delay_max_s=float(np.max(delays)), speaking_frame_delay_mean_s=float(np.mean(newest)),
                longest_step_s=busiest)


def plot(out: Path, lat: dict, cat: list[dict], mem: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    rows = lat["rows"]
    ax[0].scatter([r["ctx"] for r in rows], [r["total_s"] * 1e3 for r in rows],
                  c=["tab:red" if r["spoke"] else "tab:blue" for r in rows], s=12)
    ax[0].set(xlabel="context tokens", ylabel="frame step (ms)", title="latency (red: spoke)")
    names = [f"depth {c['depth']}" for c in cat]
    ax[1].bar(names, [c["lost"] for c in cat], color="tab:orange", label="frames lost")
    ax[1].bar(names, [c["seen"] for c in cat], bottom=[c["lost"] for c in cat], color="tab:green", label="seen")
    ax[1].set(title="IPS catch-up: frames seen / lost", ylabel="frames")
    ax[1].legend()
    ks, ms = zip(*mem["rss"])
    ax[2].plot(ks, ms, label="RSS (MB)")
    ax2 = ax[2].twinx()
    ax2.plot(range(len(mem["context"])), mem["context"], color="tab:gray", alpha=0.5, label="context tokens")
    ax[2].set(xlabel="frame", ylabel="RSS (MB)", title=f"memory, IPS at L={mem['limit']}")
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=100)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proassist bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded")
    p.add_argument("--output", default="bench_output")
    p.add_argument("--frames", type=int, default=None, help="frames for the latency run (60; --quick: 12)")
    p.add_argument("--quick", action="store_true", help="reduced runs, same keys (make bench QUICK=1)")
    p.add_argument("--summary", default="bench/results/summary.json", help="where the summary goes")
    p.add_argument("--docs", default=None, help="the doc whose 'Benchmark summary' table is refreshed "
                   "(default: docs/performance.md for a full run, none for --quick; '' for none)")
    p.add_argument("--hour-frames", type=int, default=None,
                   help="frames of the long stream (7200 = 1 hour at 2 FPS; --quick: 160)")
    p.add_argument("--agreement-bags", nargs="+", default=None,
                   help="bags for the int8 agreement and F1 (test-split bags; default: the sample bags; "
                        "--quick: one)")
    p.add_argument("--quality-max-s", type=float, default=None, help="use only each bag's first seconds")
    p.add_argument("--ros-bag", default=None, help="bag of the ROS end-to-end run (default: the demo's)")
    p.add_argument("--ros-rate", type=float, default=1.0, help="replay rate of the ROS end-to-end run")
    p.add_argument("--ros-max-s", type=float, default=None,
                   help="replay only the bag's first seconds (--quick: 30)")
    p.add_argument("--ros-timeout-s", type=float, default=600.0)
    p.add_argument("--skip-ros", action="store_true", help="no ROS end-to-end run (its keys: null)")
    limit = p.add_argument("--context-limit", type=int, default=512,
                           help="context limit L (tokens) of the catch-up and memory runs (IPS)")
    deprecated_alias(p, "--limit", limit)
    p.add_argument("--theta", type=float, default=0.3)
    p.add_argument("--reply-max-tokens", type=int, default=100)
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch intra-op threads, as the node's torch_threads (0: usable cores - 1, >= 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from proassist_ros.eval import bench_keys as bk
    from proassist_ros.eval import bench_summary as bs
    from proassist_ros.model import load
    from proassist_ros.runtime.threads import apply_torch_threads

    apply_torch_threads(args.torch_threads)  # what the node's model process runs with
    started = time.perf_counter()
    sz = bs.sizes(args.quick, args.hour_frames)
    args.frames = args.frames or (12 if args.quick else 60)
    args.ros_bag = args.ros_bag or (bs.QUICK_BAG if args.quick else bs.ROS_BAG)
    try:
        bs.check_inputs(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"proassist bench: error: {exc}", file=sys.stderr)
        return 2
    if args.quick and args.quality_max_s is None:
        args.quality_max_s = bs.QUICK_QUALITY_S
    if args.quick and args.ros_max_s is None:
        args.ros_max_s = bs.QUICK_ROS_S
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[bench] loading model {args.model!r} (fp32 and int8)", flush=True)
    model = load(args.model)
    int8_model = load(args.model, quantize="int8")
    # The one settings resolver: the context budget and the reply ending the model was trained with.
    defaults = default_settings(args.model)
    settings = {"theta": args.theta, **model_settings(args.theta, args.context_limit, defaults, strategy="ips")}
    print(f"[bench] 1/3 latency over {args.frames} frames", flush=True)
    lat = bench_latency(int8_model, args.frames, args.theta, args.reply_max_tokens,
                        settings["append_eot_after_reply"])
    print(f"[bench] 2/3 catch-up under IPS (L={args.context_limit})", flush=True)
    cfg = EngineConfig(**settings, step_matcher="none", reply_max_tokens=args.reply_max_tokens)
    frames = _frames(max(args.frames, 16 if args.quick else 80), 2.0)
    cat = [simulate(int8_model, cfg, frames, 2.0, d) for d in (1, 8)]
    print(f"[bench] 3/3 long stream: {sz['hour_frames']} frames, IPS at L={args.context_limit}", flush=True)
    mem = bk.hour_stream(int8_model, defaults, sz["hour_frames"], sz["hour_window"], args.context_limit,
                         bk.frame_cycle(240, size=(120, 160)))
    summary = dict(model=args.model, latency={k: v for k, v in lat.items() if k != "rows"},
                   catch_up=cat, memory={k: v for k, v in mem.items() if k not in ("rss", "context")})
    (out / "bench.json").write_text(json.dumps(dict(summary=summary, latency_rows=lat["rows"],
                                                    memory_rss=mem["rss"]), indent=1))
    plot(out, lat, cat, mem)
    print(json.dumps(summary, indent=1))
    print(f"[bench] wrote {out / 'bench.json'} and {out / 'bench.png'}")
    keys = bs.collect(model, int8_model, args.model, defaults, args, mem, out,
                      log=lambda m: print(m, flush=True))
    keys["settings"] = {"defaults": defaults, "bench_session": settings}
    result = bs.write(Path(args.summary), keys, spec=args.model, args=args, facts=bk.machine_facts(),
                      wall_s=time.perf_counter() - started)
    print(json.dumps({k: result[k] for k in bs.KEYS} | {"notes": result["notes"]}, indent=1))
    print(f"[bench] wrote {args.summary} in {result['wall_s']:.0f} s")
    doc = args.docs if args.docs is not None else ("" if args.quick else str(bs.REPO / "docs" / "performance.md"))
    if doc:
        print(f"[bench] {'refreshed' if bs.refresh_docs(Path(doc), result) else 'no table markers in'} {doc}")
    return 0
