"""The engine-side keys of ``bench/results/summary.json`` (no DDS, one model, one process).

Each function measures one group of keys on the model it is given and returns plain numbers:

- ``realtime_factors``: frames per second ÷ 2 for silent frames at ~100 and ~1000 tokens of
  context and for frames that speak (vision + LLM, ``AssistantSession.push_frame``);
- ``reply_ms_per_token``: one greedy reply token on a KV cache of ``ctx`` tokens (the keys: medians
  of rounds that alternate the models, ``reply_ms_per_token_models``);
- ``kv_speedup``: one frame chunk appended to a cache of N tokens against recomputing all N;
- ``hour_stream``: a long stream with IPS cycling at a small context limit: step time p95 and
  RSS of the last window against the first (also the memory plot's data);
- ``ips_stall``: the longest gap between two decisions that a summary caused, with catch-up.

Every session's settings come from the one resolver (``engine.config.model_settings`` over
``model.loader.default_settings``), passed in as ``defaults``.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from proassist_ros.data.synthetic import GOAL, RECIPE, render
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.config import model_settings
from proassist_ros.model.quantize import kernel_name

FPS = 2.0
ALWAYS_SILENT, ALWAYS_SPEAK = 1e-6, 1.0  # θ: silent iff P(silence) > θ


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_facts() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": cpu, "cpu_cores": os.cpu_count(), "usable_cores": usable,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "int8_kernel": kernel_name()}


def frame_cycle(n: int, size=(240, 320)) -> list[np.ndarray]:
    """``n`` rendered frames of the synthetic scene (reused cyclically by long runs)."""
    return [render((k + 1) / FPS, size) for k in range(n)]


def session(model, defaults: Mapping[str, Any], context_limit: int, **over: Any) -> AssistantSession:
    """A session with the model's own settings at ``context_limit`` (IPS), ``over`` on top."""
    settings = model_settings(None, context_limit, defaults, strategy="ips")
    return AssistantSession(model, EngineConfig(**{**settings, "step_matcher": "none", **over}))


def _fill(s: AssistantSession, frames: list[np.ndarray], target: int, t: float) -> float:
    """Feed frames in backlogs (one forward each) until the context holds ≥ ``target`` tokens."""
    while s.context_tokens < target:
        s.push_frames([(frames[k % len(frames)], t + k / FPS) for k in range(16)])
        t += 16 / FPS
    return t


def _timed_frames(s: AssistantSession, frames: list[np.ndarray], n: int, t: float) -> tuple[list, float]:
    rows = []
    for k in range(n):
        t += 1 / FPS
        t0 = time.perf_counter()
        r = s.push_frame(frames[k % len(frames)], t)
        rows.append((time.perf_counter() - t0, r.spoke, len(r.text.split()), s.context_tokens))
    return rows, t


def realtime_factors(model, defaults: Mapping[str, Any], frames: list[np.ndarray], silent_n: int,
                     speak_n: int, reply_max_tokens: int) -> dict:
    """Silent frames at ~100 / ~1000 tokens of context (θ ≈ 0: every frame silent) and speaking
    frames (θ = 1: every frame replies, up to ``reply_max_tokens``) from ~100 tokens."""
    out: dict[str, Any] = {}
    s, t = session(model, defaults, 2048, theta=ALWAYS_SILENT), 0.0
    for target in (100, 1000):  # one stream, measured at ~100 tokens and again at ~1000
        t = _fill(s, frames, target, t)
        _, t = _timed_frames(s, frames, 2, t)  # warm-up
        rows, t = _timed_frames(s, frames, silent_n, t)
        steps = [r[0] for r in rows]
        out[f"realtime_factor_silent_{target}"] = 1.0 / float(np.median(steps)) / FPS
        out[f"silent_{target}"] = {"step_p50_s": float(np.median(steps)), "step_p95_s": float(np.percentile(steps, 95)),
                                   "context_tokens": [rows[0][3], rows[-1][3]], "frames": len(rows),
                                   "spoke": sum(r[1] for r in rows)}
    s = session(model, defaults, 4096, theta=ALWAYS_SPEAK, reply_max_tokens=reply_max_tokens)
    t = _fill(s, frames, 100, 0.0)
    rows, _ = _timed_frames(s, frames, speak_n, t)
    steps = [r[0] for r in rows]
    out["realtime_factor_speaking"] = 1.0 / float(np.median(steps)) / FPS
    out["speaking"] = {"step_p50_s": float(np.median(steps)), "step_p95_s": float(np.percentile(steps, 95)),
                       "frames": len(rows), "spoke": sum(r[1] for r in rows),
                       "reply_words_mean": float(np.mean([r[2] for r in rows])),
                       "reply_max_tokens": reply_max_tokens, "context_tokens": [rows[0][3], rows[-1][3]]}
    return out


def batched_throughput(model, defaults: Mapping[str, Any], frames: list[np.ndarray], ns: tuple[int, ...],
                       rounds: int, context: int = 100) -> dict:
    """Silent frames per second for N wearers: N sessions (each filled to ~``context`` tokens, at
    different lengths) stepped one after another (``push_frame`` each), then the same N sessions
    going on, decided together in one batched forward per round (``engine.batch.push_frames_together``;
    their contexts a few frames longer)."""
    from proassist_ros.engine.batch import push_frames_together

    out: dict[str, Any] = {}
    for n in ns:
        fps = {}
        sessions = [session(model, defaults, 2048, theta=ALWAYS_SILENT) for _ in range(n)]
        t = [_fill(s, frames[k:] + frames[:k], context + 8 * k, 0.0) for k, s in enumerate(sessions)]
        for m, mode in enumerate(("separate", "batched")):  # the same streams go on (a frame more per round)
            times = []
            for r in range(rounds + 1):  # round 0: warm-up
                rr = m * (rounds + 1) + r
                batch = [(frames[(rr + k) % len(frames)], t[k] + (rr + 1) / FPS) for k in range(n)]
                t0 = time.perf_counter()
                if mode == "batched":
                    push_frames_together(sessions, batch)
                else:
                    for s, b in zip(sessions, batch):
                        s.push_frame(*b)
                times.append(time.perf_counter() - t0)
            fps[mode] = n / float(np.median(times[1:]))
        out[n] = {"separate_fps": fps["separate"], "batched_fps": fps["batched"],
                  "speedup": fps["batched"] / fps["separate"]}
    return out


@torch.no_grad()
def _alternating(setups: Mapping[str, tuple[Any, Any]], ctx: int, n_tokens: int, rounds: int) -> dict:
    """``reply_ms_per_token`` for each setup (label → (switch, model); ``switch()`` runs first and
    returns False to skip the setup), in alternating rounds so that a slow minute of a shared
    machine hits every setup: {label: {…the round-median run…, "rounds_ms": [each round's]}}."""
    per: dict[str, list[dict]] = {}
    prefilled: dict[int, tuple] = {}  # one prefill of the ctx tokens per model, cloned for each run
    for _ in range(rounds):
        for label, (switch, model) in setups.items():
            if switch() is not False:
                if id(model) not in prefilled:
                    prefilled[id(model)] = prefill(model, ctx)
                per.setdefault(label, []).append(reply_ms_per_token(model, ctx, n_tokens,
                                                                    prefilled=prefilled[id(model)]))
    out = {}
    for label, runs in per.items():
        ms = [r["ms_per_token"] for r in runs]
        out[label] = {**runs[int(np.argsort(ms)[len(ms) // 2])], "rounds_ms": ms}
    return out


def reply_ms_per_token_models(fp32_model, int8_model, ctx: int, n_tokens: int, rounds: int = 3) -> dict:
    """``reply_ms_per_token`` of fp32 and int8 (its default kernel) in alternating rounds: the
    keys ``reply_ms_per_token_fp32`` / ``_int8`` are the round-medians."""
    return _alternating({"fp32": (lambda: None, fp32_model), "int8": (lambda: None, int8_model)}, ctx, n_tokens,
                        rounds)


def reply_ms_per_token_by_kernel(int8_model, ctx: int, n_tokens: int, rounds: int = 3) -> dict:
    """``reply_ms_per_token`` of the int8 model with each int8 kernel this machine has, in one
    process, in alternating rounds (the A/B of docs/performance.md "int8 kernel"):
    {"native": …, "torch": …}."""
    from proassist_ros.model import int8_kernel

    def switch(kernel: str):
        int8_kernel.use(kernel)
        return kernel == "torch" or int8_kernel.available()

    try:
        return _alternating({k: (lambda k=k: switch(k), int8_model) for k in ("native", "torch")}, ctx, n_tokens,
                            rounds)
    finally:
        int8_kernel.use("native")


def reply_ms_per_token_by_threads(int8_model, ctx: int, n_tokens: int, counts: tuple[int, ...] = (1, 2),
                                  rounds: int = 3) -> dict:
    """``reply_ms_per_token`` of the int8 model with the native products on each number of threads
    (csrc/row_pool.c), in alternating rounds: what a free core buys (docs/performance.md "Helper
    threads for the int8 products"). {"1": …, "2": …}; {} where the native kernel is not built."""
    from proassist_ros.model import int8_kernel

    if not int8_kernel.available():
        return {}
    before = int8_kernel.threads()
    try:
        return _alternating({str(n): (lambda n=n: int8_kernel.set_threads(n), int8_model) for n in counts}, ctx,
                            n_tokens, rounds)
    finally:
        int8_kernel.set_threads(before)


@torch.no_grad()
def prefill(model, ctx: int, seed: int = 0) -> tuple[Any, int]:
    """A stream state holding ``ctx`` random tokens and the greedy token after them."""
    from proassist_ros.model.streaming import StreamState, forward_chunk

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, model.vocab_size - 1, (ctx,), generator=g).tolist()
    state = StreamState.new()
    return state, int(forward_chunk(model, state, ids, keep=[-1])[-1].argmax())


@torch.no_grad()
def reply_ms_per_token(model, ctx: int, n_tokens: int, seed: int = 0, prefilled: tuple | None = None) -> dict:
    """Greedy decoding on a cache of ``ctx`` tokens: median ms per token (the reply loop of
    ``model.streaming.step_frame``: one forward of the previous token, then its argmax).
    ``prefilled``: ``prefill(model, ctx)``'s result, cloned here (the runs of an A/B share it)."""
    from proassist_ros.model.streaming import forward_chunk

    state, tok = prefilled if prefilled is not None else prefill(model, ctx, seed)
    state = state.clone() if prefilled is not None else state
    times = []
    for _ in range(n_tokens + 2):
        t0 = time.perf_counter()
        tok = int(forward_chunk(model, state, [tok], keep=[-1])[-1].argmax())
        times.append(time.perf_counter() - t0)
    times = times[2:]  # warm-up
    return {"ms_per_token": 1e3 * float(np.median(times)), "p95_ms": 1e3 * float(np.percentile(times, 95)),
            "context_tokens": ctx, "tokens": n_tokens}


def frame_chunk_tokens(model, defaults: Mapping[str, Any], frames: list[np.ndarray]) -> int:
    """Tokens one silent frame adds to the context (its chunk)."""
    s = session(model, defaults, 2048, theta=ALWAYS_SILENT)
    s.push_frame(frames[0], 0.5)
    before = s.context_tokens
    s.push_frame(frames[1], 1.0)
    return s.context_tokens - before


@torch.no_grad()
def kv_speedup(model, ctx: int, chunk: int, reps: int, seed: int = 0) -> dict:
    """LLM time of one frame chunk (``chunk`` tokens) on a cache of ``ctx`` tokens, against one
    forward over all ``ctx + chunk`` tokens without a cache (what a cache-less model redoes per
    frame). Vision is left out of both."""
    from proassist_ros.model.streaming import StreamState, forward_chunk

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, model.vocab_size - 1, (ctx + chunk,), generator=g).tolist()
    from proassist_ros.model.streaming import crop

    full, state = [], None
    for _ in range(reps):
        fresh = StreamState.new()
        t0 = time.perf_counter()
        forward_chunk(model, fresh, ids, keep=[-1])
        full.append(time.perf_counter() - t0)
        del state
        gc.collect()
        state = fresh
    crop(state, ctx)  # the last recompute's cache of the first ctx tokens: what a prefill of them holds
    cached = []
    for _ in range(max(3, reps) + 1):
        branch = state.clone()
        t0 = time.perf_counter()
        forward_chunk(model, branch, ids[ctx:], keep=[-1])
        cached.append(time.perf_counter() - t0)
        del branch
    cached = cached[1:]  # warm-up
    return {"speedup": float(np.median(full) / np.median(cached)), "recompute_s": float(np.median(full)),
            "cached_step_s": float(np.median(cached)), "context_tokens": ctx, "chunk_tokens": chunk}


def hour_stream(model, defaults: Mapping[str, Any], n: int, window: int, context_limit: int,
                frames: list[np.ndarray]) -> dict:
    """``n`` frames at 2 FPS with IPS at ``context_limit``; the first and the last ``window``
    frames compared (step time p95, peak RSS). Short replies and summaries (8 / 64 tokens): this
    run is about flatness over stream length, not about reply speed. Also the memory plot's data."""
    s = session(model, defaults, context_limit, theta=0.3, reply_max_tokens=8, summary_max_tokens=64)
    s.set_task(GOAL, RECIPE)
    steps, rss, ctx, events = [], [], [], 0
    for k in range(n):
        t0 = time.perf_counter()
        r = s.push_frame(frames[k % len(frames)], (k + 1) / FPS)
        steps.append(time.perf_counter() - t0)
        events += bool(r.context_event)
        if k % 10 == 0 or k >= n - window:
            if k % 10 == 0:
                gc.collect()
            rss.append((k, rss_mb()))
        ctx.append(s.context_tokens)
    window = min(window, n // 2)
    first, last = steps[:window], steps[-window:]
    rss_first = [m for k, m in rss if k < window]
    rss_last = [m for k, m in rss if k >= n - window]
    half = [m for k, m in rss if k >= n // 2]
    trigger = s.config.trigger_tokens
    first_limit = next((k for k, c in enumerate(ctx) if c >= trigger or (k and c < ctx[k - 1])), n)
    return {"frames": n, "window_frames": window, "limit": context_limit, "context_events": events,
            "summaries": s.summaries_triggered,
            "p95_first_s": float(np.percentile(first, 95)), "p95_last_s": float(np.percentile(last, 95)),
            "p95_ratio_last_first": float(np.percentile(last, 95) / np.percentile(first, 95)),
            "rss_first_mb": max(rss_first), "rss_last_mb": max(rss_last),
            "rss_ratio_last_first": max(rss_last) / max(rss_first),
            "rss": rss, "context": ctx, "first_limit_frame": first_limit,
            "rss_growth_second_half_mb": float(max(half) - min(half)) if half else 0.0}


REALTIME_LEAD_TOKENS = 8  # ips_stall: tokens before the IPS trigger from which frames come in real time


def ips_stall(model, defaults: Mapping[str, Any], frames: list[np.ndarray], context_limit: int,
              reply_max_tokens: int, depth: int = 8, max_frames: int = 2000, after: int = 8,
              background: bool = True) -> dict:
    """How long a summary leaves the stream undecided. Frames arrive at their stamps on a virtual
    clock driven by the real compute times (as ``bench.simulate``); backlogs of up to ``depth``
    frames go through ``push_frames`` (catch-up). A decision happens when a backlog's newest frame
    has been decided (its reply and the context management come after it).

    ``ips_stall_s``: the longest time a frame waited for the decision that took it in — from its
    arrival, or from the end of the previous decision's reply if that came later (a reply is not
    the summary's doing) — over the backlogs around a summary: from the frame whose end started
    it to the first decision after it was taken. At 2 FPS with nothing in the way it is the step
    time (~0.05 s); synchronous IPS makes it the summary's length. ``decision_gap_s``: the same
    window's longest time between two decisions (≥ 1 / FPS by construction; the key's definition
    before 2026-12-07). Runs until ``after`` backlogs past the first summary. ``background``: the
    node's IPS in a background thread (engine/summary_job.py); False: the paper's synchronous IPS.
    The clock is virtual (idle time skipped) until the context is ``REALTIME_LEAD_TOKENS`` short
    of the trigger, then the wall clock: frames are waited for, as from a camera, so a summary
    written in the background gets the real time it would get in the node.
    """
    s = session(model, defaults, context_limit, reply_max_tokens=reply_max_tokens, ips_background=background)
    s.set_task(GOAL, RECIPE)
    now, i, prev_end, stall, gap, summary_s = 0.0, 0, None, None, None, []
    remaining, pending, lost, job_s, offset = None, False, 0, [], None
    while i < max_frames and (remaining is None or remaining > 0):
        now = max(now, (i + 1) / FPS)  # frame k arrives at (k + 1) / FPS
        if offset is None and s.context_tokens >= s.config.trigger_tokens - REALTIME_LEAD_TOKENS:
            offset = time.perf_counter() - now  # from here on the clock is the wall clock
        if offset is not None:  # a summary thread runs in real time: so must the camera
            time.sleep(max(0.0, now - (time.perf_counter() - offset)))
            now = time.perf_counter() - offset
        j = min(int(now * FPS + 1e-9), max_frames)  # frames 0..j-1 have arrived
        take = list(range(max(i, j - depth), j))
        lost += j - i - len(take)
        t0 = time.perf_counter()
        results = s.push_frames([(frames[k % len(frames)], (k + 1) / FPS) for k in take])
        dt = time.perf_counter() - t0
        newest = results[-1]
        reply_s = newest.timings.get("reply_s", 0.0)
        decision = now + dt - reply_s - newest.timings.get("context_s", 0.0)
        # a summary after the previous decision, or within this backlog's older frames
        if prev_end is not None and (pending or any(_summary_at(r) for r in results[:-1])):
            stall = max(stall or 0.0, decision - max((i + 1) / FPS, prev_end))  # frame i waited longest
            gap = max(gap or 0.0, decision - prev_end)
        pending = _summary_at(newest)
        summary_s += [r.timings.get("context_s", 0.0) for r in results if r.context_event]
        job_s += [r.timings["summary_job_s"] for r in results if "summary_job_s" in r.timings]
        if summary_s:
            remaining = after if remaining is None else remaining - 1
        prev_end, now, i = decision + reply_s, now + dt, j
        if offset is not None:
            now = time.perf_counter() - offset
    s.wait_summary()
    return {"ips_stall_s": stall, "decision_gap_s": gap, "summaries": len(summary_s),
            "summary_s_max": max(summary_s, default=None), "summary_job_s_max": max(job_s, default=None),
            "background": background, "summary": s.task_state().progress_summary,
            "frames": i, "frames_lost": lost, "depth": depth, "limit": context_limit}


def _summary_at(r) -> bool:
    """The frame's end ran a context event, or a background summary is being written after it."""
    return bool(r.context_event) or r.summary_running
