"""`make bench`: speed, catch-up and memory of the streaming engine (numbers + plots).

Three measurements on one model (default: the embedded SmolLM2 model, CPU):

1. latency — per-frame step time (vision + LLM), silent vs. speaking frames, vs. context length.
2. catch-up — frames arrive at ``fps`` on a virtual clock driven by the real compute times; an
   IPS summary (up to 512 tokens) takes seconds. Compared: a latest-frame-wins mailbox (depth 1,
   what most ROS ML nodes do) against our catch-up queue (depth N, the backlog goes through
   ``AssistantSession.push_frames`` in one forward). Reported: frames seen, frames lost, decision
   delay (frame arrival → its decision).
3. memory — process RSS over a long stream with a small context limit: once the limit is
   reached, memory must stop growing with stream length.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path

import numpy as np

from proassist_ros.data.synthetic import GOAL, RECIPE, render
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.config import model_settings
from proassist_ros.model.loader import default_settings
from proassist_ros.utils.cliargs import deprecated_alias


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


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


def bench_memory(model, n: int, settings: dict) -> dict:
    """``settings``: the model's own EngineConfig values (``engine.config.model_settings``)."""
    # short replies/summaries: this run is about memory vs. stream length, not about speed
    cfg = EngineConfig(**{**settings, "theta": 0.3}, context_strategy="ips", step_matcher="none",
                       reply_max_tokens=8, summary_max_tokens=64)
    s = AssistantSession(model, cfg)
    s.set_task(GOAL, RECIPE)
    rss, ctx = [], []
    for k, (img, stamp) in enumerate(_frames(n, 2.0, size=(120, 160))):
        s.push_frame(img, stamp)
        if k % 10 == 0:
            gc.collect()
            rss.append((k, _rss_mb()))
        ctx.append(s.context_tokens)
    half = [m for k, m in rss if k >= n // 2]
    first_limit = next((k for k, c in enumerate(ctx) if c >= cfg.trigger_tokens or (k and c < ctx[k - 1])), n)
    return dict(frames=n, limit=cfg.context_limit, rss=rss, context=ctx, first_limit_frame=first_limit,
                rss_growth_second_half_mb=float(max(half) - min(half)) if half else 0.0,
                summaries=s.summaries_triggered)


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
    p.add_argument("--frames", type=int, default=60, help="frames for the latency run")
    p.add_argument("--memory-frames", type=int, default=300)
    limit = p.add_argument("--context-limit", type=int, default=512,
                           help="context limit L (tokens) of the catch-up and memory runs (IPS)")
    deprecated_alias(p, "--limit", limit)
    p.add_argument("--theta", type=float, default=0.3)
    p.add_argument("--reply-max-tokens", type=int, default=100)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from proassist_ros.model import load

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[bench] loading model {args.model!r}", flush=True)
    model = load(args.model)
    # The one settings resolver: the context budget and the reply ending the model was trained with.
    settings = {"theta": args.theta, **model_settings(args.theta, args.context_limit,
                                                      default_settings(args.model), strategy="ips")}
    print(f"[bench] 1/3 latency over {args.frames} frames", flush=True)
    lat = bench_latency(model, args.frames, args.theta, args.reply_max_tokens,
                        settings["append_eot_after_reply"])
    print(f"[bench] 2/3 catch-up under IPS (L={args.context_limit})", flush=True)
    cfg = EngineConfig(**settings, step_matcher="none", reply_max_tokens=args.reply_max_tokens)
    frames = _frames(max(args.frames, 80), 2.0)
    cat = [simulate(model, cfg, frames, 2.0, d) for d in (1, 8)]
    print(f"[bench] 3/3 memory over {args.memory_frames} frames", flush=True)
    mem = bench_memory(model, args.memory_frames, settings)
    summary = dict(model=args.model, latency={k: v for k, v in lat.items() if k != "rows"},
                   catch_up=cat, memory={k: v for k, v in mem.items() if k not in ("rss", "context")})
    (out / "bench.json").write_text(json.dumps(dict(summary=summary, latency_rows=lat["rows"],
                                                    memory_rss=mem["rss"]), indent=1))
    plot(out, lat, cat, mem)
    print(json.dumps(summary, indent=1))
    print(f"[bench] wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0
