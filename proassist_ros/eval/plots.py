"""The report's figures (matplotlib, Agg, object API): a timeline per video, F1/P/R against θ,
and the latency histogram.

The object API (``Figure`` + ``FigureCanvasAgg``) is used instead of pyplot so that drawing
touches no global backend or figure registry: the report can be written from any process
(a ROS node, a test, a torchrun rank) and each figure is freed as soon as it goes out of scope.
Every function writes one PNG and returns nothing; the caller decides what the HTML shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from proassist_ros.data.schema import KIND_NAMES
from proassist_ros.eval.offline import VideoRun

DPI = 100
REF_COLOURS = {"instruction": "#1f77b4", "correction": "#d62728", "confirmation": "#9467bd",
               "answer": "#8c564b", "progress_summary": "#17becf", "other": "#7f7f7f"}
CORRECT, FILTERED, REDUNDANT, UNSCORED = "#2ca02c", "#ff7f0e", "#555555", "#333333"
EVENT_COLOURS = {"ips": "#e377c2", "drop_middle": "#bcbd22", "drop_all": "#000000"}
LABEL_MAX = 40  # per lane: beyond this, index labels would overlap into noise


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    fig.clear()


def kind_name(kind: int | str) -> str:
    """A reference carries its kind as a string, a FrameLog as Guidance.kind (an int)."""
    if isinstance(kind, str):
        return kind or "other"
    return KIND_NAMES.get(kind, "other")


def pred_status(run: VideoRun, pairs: list[dict]) -> list[str]:
    """Per prediction: "correct" / "filtered" (matched, below the semantic threshold) /
    "redundant" (matched to silence) — or "unscored" when the video has no references."""
    if not run.has_references:
        return ["unscored"] * len(run.predictions)
    status = ["redundant"] * len(run.predictions)
    for p in pairs:
        if not 0 <= p["pred_index"] < len(status):
            raise ValueError(f"{run.video_id}: a matched pair points at prediction {p['pred_index']}, but the "
                             f"run has {len(status)} predictions (metrics and runs from different evaluations?)")
        status[p["pred_index"]] = "correct" if p["correct"] else "filtered"
    return status


def timeline(path: Path, run: VideoRun, pairs: list[dict], theta: float) -> None:
    """P(speak) per frame over the speak line (1 − θ), then three lanes — references by kind,
    predictions by match outcome, user turns — with the matches drawn between the first two.
    Context events (IPS, drop-middle, …) are vertical lines through both panels. Utterances are
    numbered (R1, P1, U1) like the table under the plot in the HTML."""
    fig = Figure(figsize=(14, 5.2))
    top, bot = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    t = np.array([f.t for f in run.frames], dtype=float)
    p = np.array([f.p_speak for f in run.frames], dtype=float)
    top.plot(t, p, color="#1f77b4", lw=1, label="P(speak) per frame")
    top.axhline(1 - theta, color="#d62728", ls="--", lw=1, label=f"speaks above\n(1 − θ) = {1 - theta:.2f}")
    spoke = [i for i, f in enumerate(run.frames) if f.spoke]
    if spoke:
        top.scatter(t[spoke], p[spoke], s=18, color="#d62728", zorder=3, label="spoke")
    top.set(ylim=(-0.02, 1.08), ylabel="P(speak)",
            title=f"{run.video_id}  ({run.task_type or 'no task type'}, θ = {theta:g})"
            + ("" if run.has_references else "  — no references: metrics skipped"))
    top.grid(alpha=0.3)

    lanes = {"reference": 2, "predicted": 1, "user": 0}
    ref_t = [r[0] for r in run.references]
    preds = run.predictions
    status = pred_status(run, pairs)
    if pairs:  # under the markers
        bot.add_collection(LineCollection(
            [[(pr["pred_time"], lanes["predicted"]), (pr["ref_time"], lanes["reference"])] for pr in pairs],
            colors=[CORRECT if pr["correct"] else FILTERED for pr in pairs], linewidths=1.6, alpha=0.8, zorder=1))
    missed = set()
    if run.has_references:
        matched = {pr["ref_index"] for pr in pairs}
        missed = {i for i in range(len(run.references)) if i not in matched}
    if run.references:  # one collection per lane, not one per marker: 10-minute videos stay fast
        ref_c = [REF_COLOURS.get(kind_name(k), REF_COLOURS["other"]) for _, _, k in run.references]
        bot.scatter(ref_t, [lanes["reference"]] * len(ref_t), s=60, marker="o", zorder=3, linewidths=1.5,
                    facecolors=["white" if i in missed else c for i, c in enumerate(ref_c)], edgecolors=ref_c)
    colour = {"correct": CORRECT, "filtered": FILTERED, "redundant": REDUNDANT, "unscored": UNSCORED}
    for st, c in colour.items():
        xs = [pt for (pt, _), s_ in zip(preds, status) if s_ == st]
        if xs:
            bot.scatter(xs, [lanes["predicted"]] * len(xs), s=60, zorder=3, color=c,
                        marker="x" if st == "redundant" else "s")
    bot.scatter([u[0] for u in run.user_turns], [lanes["user"]] * len(run.user_turns), s=60,
                marker="^", color="black", zorder=3)
    for prefix, times, lane in (("R", ref_t, "reference"), ("P", [x[0] for x in preds], "predicted"),
                                ("U", [u[0] for u in run.user_turns], "user")):
        if len(times) <= LABEL_MAX:
            for i, x in enumerate(times):
                bot.annotate(f"{prefix}{i + 1}", (x, lanes[lane]), xytext=(0, 7), textcoords="offset points",
                             ha="center", fontsize=7)
    for f in run.frames:
        if f.context_event:
            c = EVENT_COLOURS.get(f.context_event, "#7f7f7f")
            for ax in (top, bot):
                ax.axvline(f.t, color=c, ls=":", lw=1.2)
            top.annotate(f.context_event, (f.t, 0.97), xycoords=top.get_xaxis_transform(), ha="left",
                         va="top", fontsize=7, color=c, xytext=(2, 0), textcoords="offset points")
    bot.set(yticks=list(lanes.values()), yticklabels=list(lanes), ylim=(-0.6, 2.7), xlabel="stream time (s)")
    bot.grid(axis="x", alpha=0.3)
    end = max([run.duration_s or 0.0, *t.tolist(), *ref_t, *(x[0] for x in preds),
               *(u[0] for u in run.user_turns), 1.0])
    bot.set_xlim(0, end * 1.01)
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    bot.legend(handles=_lane_legend(run, status), loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.07, right=0.86, top=0.93, bottom=0.1, hspace=0.08)
    _save(fig, path)


def _lane_legend(run: VideoRun, status: list[str]) -> list[Line2D]:
    def h(marker: str, colour: str, label: str, **kw) -> Line2D:
        return Line2D([], [], marker=marker, color=colour, ls="none", label=label, **kw)

    kinds = sorted({kind_name(k) for _, _, k in run.references})
    out = [h("o", REF_COLOURS.get(k, REF_COLOURS["other"]), f"ref: {k}") for k in kinds]
    if run.has_references:
        out.append(h("o", "#555555", "ref missed", markerfacecolor="white"))
    seen = set(status)
    for st, marker, c, label in (("correct", "s", CORRECT, "pred correct"), ("filtered", "s", FILTERED,
                                 "pred below semantic thr."), ("redundant", "x", REDUNDANT, "pred redundant"),
                                 ("unscored", "s", UNSCORED, "pred (not scored)")):
        if st in seen:
            out.append(h(marker, c, label))
    if any(s in seen for s in ("correct", "filtered")):
        out += [Line2D([], [], color=CORRECT, label="match (correct)"),
                Line2D([], [], color=FILTERED, label="match (filtered)")]
    if run.user_turns:
        out.append(h("^", "black", "user turn"))
    return out


def prf_vs_theta(path: Path, points: list[tuple[float, dict]], selected: float,
                 baseline_f1: dict[str, float]) -> None:
    """P, R and F1 of the sweep, the selected θ, and each baseline's F1 as a flat line."""
    th = [x for x, _ in points]
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for key, c in (("f1", "#000000"), ("precision", "#1f77b4"), ("recall", "#d62728")):
        ax.plot(th, [m[key] for _, m in points], marker="o", color=c, lw=2 if key == "f1" else 1,
                label=key.upper() if key == "f1" else key)
    ax.axvline(selected, color="#2ca02c", lw=1.5, label=f"selected θ = {selected:g}")
    for (name, f1), ls in zip(sorted(baseline_f1.items()), ("--", ":", "-.", (0, (5, 1)))):
        ax.axhline(f1, color="#7f7f7f", ls=ls, lw=1.2, label=f"{name} F1 = {f1:.3f}")
    top = max([1e-3, *(m[k] for _, m in points for k in ("f1", "precision", "recall")), *baseline_f1.values()])
    ax.set(xlabel="θ (silent iff P(silence) > θ)", ylabel="score", ylim=(-0.02 * top, min(1.05, top * 1.15 + 0.02)),
           title="F1, precision and recall against θ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path)


def percentiles(x: list[float]) -> tuple[float, float]:
    """(p50, p95); NaN for no data."""
    if not x:
        return float("nan"), float("nan")
    a = np.asarray(x, dtype=float)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def latency_hist(path: Path, runs: list[VideoRun], theta: float) -> None:
    """LLM time per frame, silent frames and frames that spoke apart (a reply costs many tokens,
    a silent decision one): a shared axis shows how much slower replies are. Log-spaced bins when
    the values span more than a factor 30, so both groups stay visible."""
    silent = [f.latency_s * 1e3 for r in runs for f in r.frames if not f.spoke]
    spoke = [f.latency_s * 1e3 for r in runs for f in r.frames if f.spoke]
    allv = np.asarray(silent + spoke, dtype=float)
    p50, p95 = percentiles(list(allv))
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    lo, hi = float(allv.min()), float(allv.max())
    if lo > 0 and hi / lo > 30:
        bins = np.geomspace(lo, hi, 40)
        ax.set_xscale("log")
    else:
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
    for vals, c, name in ((silent, "#1f77b4", "silent frames"), (spoke, "#d62728", "frames that spoke")):
        if vals:
            a, b = percentiles(vals)
            ax.hist(vals, bins=bins, color=c, alpha=0.6,
                    label=f"{name}: n={len(vals)}, p50 {a:.1f} ms, p95 {b:.1f} ms")
    ax.set(xlabel="LLM time per frame (ms)", ylabel="frames",
           title=f"Latency at θ = {theta:g}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({allv.size} frames)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
