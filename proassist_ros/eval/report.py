"""``report.html`` of an evaluation: one static page, its PNGs under ``plots/`` (``eval.plots``).

The page is meant to be read next to ``metrics.json`` (which holds every number) and never to
show a number alone: the headline table puts the model beside the silent and rule baselines
(and a second model when one was given). It has no JavaScript and no network resources, refers
to its images relatively, and escapes every text, so the output folder can be moved, archived
or opened offline. Videos without references still get their timeline; the page says plainly
that their metrics were skipped. A video whose bag had no task says that its session ran
without a goal or recipe (the model saw only the frames).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from urllib.parse import quote

from proassist_ros.eval import plots
from proassist_ros.eval.offline import VideoRun
from proassist_ros.eval.scoring import NO_TASK_NOTE, NOT_SCORED_REASON

MAX_TIMELINES = 30
_REQUIRED = ("thetas", "theta_selected", "videos")
_RATE_COLS = (("precision", "P"), ("recall", "R"), ("f1", "F1"), ("f1_content", "F1 content-exact"),
              ("content_right_share", "right in content"), ("semantic_score", "semantic"),
              ("time_diff", "time diff (s)"))
_CONTENT_EXPLAINED = ("F1 content-exact counts a correct pair only if the prediction names the reference's step, "
                      "objects, location and counts, judged from the task world's vocabulary (eval/content.py); "
                      "right in content: the share of correct pairs that do. — where not available.")
_COUNT_COLS = (("matched", "correct"), ("matched_before_filter", "pairs"), ("missed", "missed"),
               ("redundant", "redundant"))
_STATUS_TEXT = {"correct": "correct", "filtered": "below threshold", "redundant": "redundant",
                "unscored": "not scored (no references)"}
_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1500px}
table{border-collapse:collapse;margin:0.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px}
th{background:#f0f0f0}td.n{text-align:right;font-family:monospace}tr.sel td{background:#eef7ee}
.note{background:#fff6e0;border-left:4px solid #f0a020;padding:6px 10px}img{max-width:100%}"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: object, nd: int = 3) -> str:
    """A number for a table cell; "—" for missing or NaN (never an empty, ambiguous cell)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return esc(x)
    return str(x) if isinstance(x, int) else f"{x:.{nd}f}"


def _g(x: object) -> str:
    """θ and k as the sweep wrote them (0.5, 10), not padded to table precision."""
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "—"


def table(head: list[str], rows: list[list[str]], sel_rows: set[int] = frozenset()) -> str:
    """Cells are HTML already (escaped by the caller); numeric-looking cells are right-aligned."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        tds = "".join(f'<td class="n">{c}</td>' if re.fullmatch(r"[-+0-9.e—]+", c) else f"<td>{c}</td>"
                      for c in row)
        body.append(f'<tr class="sel">{tds}</tr>' if i in sel_rows else f"<tr>{tds}</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _metric_cells(m: dict | None) -> list[str]:
    return [fmt((m or {}).get(k)) for k, _ in (*_RATE_COLS, *_COUNT_COLS)]


def _metric_head() -> list[str]:
    return [h for _, h in (*_RATE_COLS, *_COUNT_COLS)]


def _img(name: str, alt: str) -> str:
    return f'<img src="plots/{quote(name)}" alt="{esc(alt)}">'


def _runs_at(runs_by_theta: dict[float, list[VideoRun]], theta: float) -> list[VideoRun]:
    for t, runs in runs_by_theta.items():
        if f"{t:g}" == f"{theta:g}":
            return runs
    raise ValueError(f"write_report: no runs at the selected θ {theta:g}; runs are at θ "
                     f"{sorted(runs_by_theta)}")


def _slug(video_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", video_id)[:60] or "video"


def write_report(out: Path, metrics: dict, runs_by_theta: dict[float, list[VideoRun]]) -> Path:
    """Write ``out/report.html`` and ``out/plots/*.png`` for ``metrics`` (evaluate's metrics.json
    dict) and the runs behind it; return the html path. Runs are drawn at the selected θ."""
    missing = [k for k in _REQUIRED if k not in metrics]
    if missing:
        raise ValueError(f"write_report: metrics lack {missing} (expected evaluate's metrics.json dict)")
    if not runs_by_theta:
        raise ValueError("write_report: no runs given (runs_by_theta is empty)")
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    sel = float(metrics["theta_selected"])
    if f"{sel:g}" not in metrics["thetas"]:
        raise ValueError(f"write_report: the selected θ {sel:g} is not among metrics' θ {list(metrics['thetas'])}")
    runs = _runs_at(runs_by_theta, sel)
    at_sel = metrics["thetas"][f"{sel:g}"]
    model = (metrics.get("settings") or {}).get("model", "model")
    parts = [f"<h1>ProAssist evaluation: {esc(model)}</h1>",
             f"<p>{len(metrics['videos'])} videos, θ swept over {esc(', '.join(metrics['thetas']))}; "
             f"selected θ = {sel:g} (all per-video plots and tables below are at this θ).</p>"]
    parts += _headline(metrics, at_sel, sel)
    parts += _theta_section(out, metrics, sel)
    parts += _latency_section(out, runs, sel)
    parts += _task_types(at_sel)
    parts += _kinds(at_sel)
    parts += _videos(metrics, at_sel, runs)
    parts += _timelines(out, runs, at_sel, sel, metrics.get("no_task") or [])
    parts += _settings(metrics)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(model)} — '
            f"ProAssist evaluation</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _headline(metrics: dict, at_sel: dict, sel: float) -> list[str]:
    out = ["<h2>Headline: the model beside its baselines</h2>"]
    skipped = metrics.get("metrics_skipped") or []
    if skipped:
        out.append(f'<p class="note">Metrics were skipped for {len(skipped)} video(s) without references: '
                   f"{esc(', '.join(skipped))}. Their timelines are still drawn below.</p>")
    no_task = metrics.get("no_task") or []
    if no_task:
        out.append(f'<p class="note">{esc(metrics.get("no_task_note") or NO_TASK_NOTE)}: '
                   f"{esc(', '.join(no_task))}.</p>")
    if metrics.get("best") is None:
        reason = metrics.get("not_scored_reason") or NOT_SCORED_REASON
        out.append(f'<p class="note">No video has references ({esc(reason)}), so there are no metrics '
                   "and no baselines: below are what the model said and when (timelines, the "
                   "utterance tables) and how long it took (latency).</p>")
        return out
    b = metrics.get("baselines") or {}
    rows = [[f"<b>{esc(metrics.get('settings', {}).get('model', 'model'))}</b>", f"θ = {sel:g}",
             *_metric_cells(metrics["best"])]]
    if "compare_model" in b:
        c = b["compare_model"]
        rows.append([f"compare: {esc(c.get('model'))}", f"θ = {_g(c.get('theta'))}", *_metric_cells(c)])
    if "rule" in b:
        rows.append(["rule (next recipe step every k s)", f"k = {_g(b['rule'].get('k'))} s",
                     *_metric_cells(b["rule"])])
    if "silent" in b:
        rows.append(["silent (never speaks)", "", *_metric_cells(b["silent"])])
    out.append(table(["system", "setting", *_metric_head()], rows, {0}))
    note = metrics["best"].get("content_note")
    out.append(f'<p class="note">{esc(note)}.</p>' if note else f"<p>{esc(_CONTENT_EXPLAINED)}</p>")
    if "rule" in b:
        per_k = ", ".join(f"{esc(k)} s: {fmt(v)}" for k, v in (b["rule"].get("f1_per_k") or {}).items())
        out.append(f"<p>Rule baseline k chosen on {esc(b['rule'].get('k_chosen_on', '?'))}. "
                   f"F1 per k: {per_k or '—'}.</p>")
    if not b:
        out.append('<p class="note">No baselines in these metrics.</p>')
    return out


def _theta_section(out_dir: Path, metrics: dict, sel: float) -> list[str]:
    out = ["<h2>θ sweep</h2>"]
    items = sorted(metrics["thetas"].items(), key=lambda kv: float(kv[0]))
    rows = []
    for key, s in items:
        o = s.get("overall") or {}
        frames = s.get("frames") or 0
        rows.append([esc(key), fmt(o.get("precision")), fmt(o.get("recall")), fmt(o.get("f1")),
                     fmt(o.get("f1_content")),
                     fmt(s.get("utterances")), fmt(frames), fmt(s.get("context_events")),
                     fmt(s.get("llm_s"), 1), fmt(s.get("vision_s"), 1),
                     fmt(1e3 * s["llm_s"] / frames if frames and s.get("llm_s") is not None else None, 1)])
    out.append(table(["θ", "P", "R", "F1", "F1 content-exact", "utterances", "frames", "context events", "LLM s",
                      "vision s", "LLM ms/frame"], rows, {i for i, (k, _) in enumerate(items) if k == f"{sel:g}"}))
    points = [(float(k), s["overall"]) for k, s in items if s.get("overall")]
    if len(items) < 2:
        out.append(f"<p>One θ ({esc(items[0][0])}) was evaluated: no plot against θ.</p>")
    elif len(points) < len(items):
        out.append("<p>No references to score: no plot against θ.</p>")
    else:
        b = metrics.get("baselines") or {}
        lines = {}
        if "silent" in b:
            lines["silent"] = b["silent"]["f1"]
        if "rule" in b:
            lines[f"rule (k = {b['rule'].get('k', 0):g} s)"] = b["rule"]["f1"]
        if "compare_model" in b:
            c = b["compare_model"]
            lines[f"compare {c.get('model')} (θ = {c.get('theta', 0):g})"] = c["f1"]
        plots.prf_vs_theta(out_dir / "plots" / "prf_vs_theta.png", points, sel, lines)
        out.append(_img("prf_vs_theta.png", "F1, precision and recall against θ"))
    return out


def _latency_section(out_dir: Path, runs: list[VideoRun], sel: float) -> list[str]:
    out = ["<h2>Latency</h2>"]
    if not any(r.frames for r in runs):
        return [*out, "<p>No frames were processed: no latency histogram.</p>"]
    plots.latency_hist(out_dir / "plots" / "latency.png", runs, sel)
    out.append(f"<p>LLM time per frame at θ = {sel:g} (decision plus any reply or summary; the vision "
               "tower runs batched ahead and is not included).</p>")
    out.append(_img("latency.png", "latency histogram"))
    return out


def _task_types(at_sel: dict) -> list[str]:
    per = at_sel.get("per_task_type") or {}
    out = ["<h2>Per task type</h2>"]
    if not per:
        return [*out, "<p>No scored video: no per-task-type metrics.</p>"]
    rows = [[esc(k), fmt(m.get("num_videos")), *_metric_cells(m)] for k, m in per.items()]
    return [*out, table(["task type", "videos", *_metric_head()], rows)]


def _kinds(at_sel: dict) -> list[str]:
    per = (at_sel.get("overall") or {}).get("per_kind") or {}
    if not per:
        return []
    rows = [[esc(k), fmt(m.get("references")), fmt(m.get("matched")), fmt(m.get("recall")),
             fmt(m.get("content_matched")), fmt(m.get("recall_content")), fmt(m.get("content_right_share"))]
            for k, m in per.items()]
    return ["<h2>Per kind of reference</h2>",
            table(["kind", "references", "correct", "recall", "content-exact", "recall content-exact",
                   "right in content"], rows)]


def _videos(metrics: dict, at_sel: dict, runs: list[VideoRun]) -> list[str]:
    by_id = {r.video_id: r for r in runs}
    per_video = at_sel.get("per_video") or {}
    rows = []
    for i, v in enumerate(metrics["videos"]):
        vid = v["video_id"]
        r = by_id.get(vid)
        name = f'<a href="#v{i}">{esc(vid)}</a>' if i < MAX_TIMELINES and r is not None else esc(vid)
        task_type = "— (no task)" if v.get("task") is False else (v.get("task_type") or "")
        common = [name, esc(task_type), esc(v.get("split") or ""), fmt(v.get("duration_s"), 1),
                  fmt(v.get("references")), fmt(len(r.predictions) if r else None),
                  fmt(sum(1 for f in r.frames if f.context_event) if r else None)]
        m = per_video.get(vid)
        if m is None:
            rows.append([*common, "metrics skipped (no references)", "", "", ""])
        else:
            rows.append([*common, fmt(m.get("precision")), fmt(m.get("recall")), fmt(m.get("f1")),
                         fmt(m.get("f1_content"))])
    return ["<h2>Per video</h2>", table(["video", "task type", "split", "duration (s)", "references",
                                         "predictions", "context events", "P", "R", "F1", "F1 content-exact"],
                                        rows)]


def _timelines(out_dir: Path, runs: list[VideoRun], at_sel: dict, sel: float,
               no_task: list[str] | tuple[str, ...] = ()) -> list[str]:
    out = ["<h2>Timelines</h2>",
           f"<p>P(speak) per frame; the model speaks when P(speak) ≥ 1 − θ = {1 - sel:.2f}. Lanes: "
           "references (by kind; hollow = missed), predictions (green = correct, orange = matched but "
           "below the semantic threshold, grey × = redundant), user turns. Dotted verticals: context "
           "events (IPS, drop-middle, drop-all).</p>"]
    if len(runs) > MAX_TIMELINES:
        out.append(f'<p class="note">{len(runs) - MAX_TIMELINES} of {len(runs)} videos are left out of the '
                   f"timelines (at most {MAX_TIMELINES} are drawn); their numbers are in the tables above "
                   "and in metrics.json.</p>")
    per_video = at_sel.get("per_video") or {}
    without_task = set(no_task)
    for i, run in enumerate(runs[:MAX_TIMELINES]):
        if run.has_references and run.video_id not in per_video:
            raise ValueError(f"write_report: {run.video_id} has references but no per-video metrics at "
                             f"θ {sel:g} (metrics and runs from different evaluations?)")
        pairs = (per_video.get(run.video_id) or {}).get("pairs", [])
        name = f"timeline_{i:03d}_{_slug(run.video_id)}.png"
        plots.timeline(out_dir / "plots" / name, run, pairs, sel)
        note = "" if run.has_references else " — no references: metrics skipped"
        note += " — no task: no goal or recipe" if run.video_id in without_task else ""
        out += [f'<h3 id="v{i}">{esc(run.video_id)}{esc(note)}</h3>', _img(name, f"timeline of {run.video_id}"),
                _utterance_table(run, pairs)]
    return out


def _utterance_table(run: VideoRun, pairs: list[dict]) -> str:
    """What the plot cannot show without hovering: every utterance's text and its match."""
    by_pred = {p["pred_index"]: p for p in pairs}
    by_ref = {p["ref_index"]: p for p in pairs}
    status = plots.pred_status(run, pairs)
    rows: list[tuple[float, int, list[str]]] = []
    for i, (t, text, kind) in enumerate(run.references):
        p = by_ref.get(i)
        res = ("missed" if run.has_references and p is None else
               f"P{p['pred_index'] + 1} ({'correct' if p['correct'] else 'below threshold'}, "
               f"s = {p['score']:.2f}, Δt = {p['time_diff']:.1f} s{_content_text(p)})")
        rows.append((t, 0, [f"R{i + 1}", fmt(t, 1), "reference", esc(plots.kind_name(kind)), esc(text), esc(res)]))
    preds = [f for f in run.frames if f.spoke]
    for i, f in enumerate(preds):
        p = by_pred.get(i)
        shown = _STATUS_TEXT[status[i]]
        res = f"R{p['ref_index'] + 1} ({shown}, s = {p['score']:.2f})" if p else shown
        rows.append((f.t, 1, [f"P{i + 1}", fmt(f.t, 1), "predicted", esc(plots.kind_name(f.kind)), esc(f.text),
                              esc(res)]))
    for i, (t, text) in enumerate(run.user_turns):
        rows.append((t, 2, [f"U{i + 1}", fmt(t, 1), "user", "", esc(text), ""]))
    for f in run.frames:
        if f.context_event:
            rows.append((f.t, 3, ["", fmt(f.t, 1), "context", esc(f.context_event), "", ""]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return table(["#", "t (s)", "lane", "kind", "text", "match"], [r for _, _, r in rows])


def _content_text(pair: dict) -> str:
    """", content right" / ", content wrong: said … for …" of a pair (nothing where unknown)."""
    exact = pair.get("content_exact")
    if exact is None:
        return ""
    if exact:
        return ", content right"
    return f", content wrong: said {pair.get('pred_content')} for {pair.get('ref_content')}"


def _settings(metrics: dict) -> list[str]:
    s = dict(metrics.get("settings") or {})
    for k in ("wall_s", "processes"):
        if k in metrics:
            s[k] = metrics[k]
    if "bags" in metrics:
        s["bags"] = f"{len(metrics['bags'])} bag(s)"
    rows = [[esc(k), fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else esc(v)]
            for k, v in s.items()]
    return ["<h2>Settings</h2>", table(["setting", "value"], rows),
            "<p>Every number on this page, and more (BLEU, Jaccard, rates per θ), is in metrics.json.</p>"]
