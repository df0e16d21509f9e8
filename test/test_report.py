"""report.html and its PNGs, from hand-built runs scored by the real evaluate code.

Runs are built frame by frame (no model): P(speak) per frame decides, as the node does, that a
frame speaks iff P(speak) ≥ 1 − θ. Metrics come from evaluate's own ``_theta_summary`` and
``_baselines`` with a bag-of-words embedder standing in for MiniLM (not loaded in a unit
test), so the numbers on the page are the real metric's, not typed in.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.eval import evaluate, report
from proassist_ros.eval import metrics as paper_metric
from proassist_ros.eval.metrics import select_theta
from proassist_ros.eval.offline import FrameLog, VideoRun

_VOCAB: dict[str, int] = {}


def bow_embed(texts: list[str]) -> np.ndarray:
    """Unit bag-of-words vectors: shared words give a known cosine, no model needed."""
    out = np.zeros((len(texts), 256))
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            out[i, _VOCAB.setdefault(w, len(_VOCAB))] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


# video → (task type, duration, {t: (P(speak), text)}, references, user turns, context events)
VIDEOS = {
    "tea_01": ("make_tea", 15.0,
               {2.0: (0.9, "pour hot water into the cup"), 5.0: (0.6, "add sugar and milk"),
                9.0: (0.55, "wipe the table <b>now</b>"), 11.0: (0.4, "sweep the floor")},
               [(2.0, "pour hot water into the cup", "instruction"), (5.5, "add the tea bag now", "correction"),
                (13.0, "throw away the tea bag", "confirmation")],
               [(3.0, "what next?")], {7.0: "ips"}),
    "shelf_02": ("assemble_shelf", 6.0, {3.0: (0.65, "attach the side panel")},
                 [(3.0, "attach the side panel", "instruction")], [], {}),
    "noref_03": ("make_tea", 5.0, {1.5: (0.95, "hello there")}, [], [], {}),
}
STEPS = {"make_tea": ["boil water", "add the tea bag now"], "assemble_shelf": ["attach the side panel"]}


def make_run(vid: str, theta: float) -> VideoRun:
    task, dur, speech, refs, users, events = VIDEOS[vid]
    run = VideoRun(vid, task, "test", dur, theta, references=list(refs), user_turns=list(users))
    for k in range(1, int(dur * 2) + 1):
        t = k / 2
        p, text = speech.get(t, (0.1, ""))
        spoke = p >= 1 - theta
        run.frames.append(FrameLog(t, p, spoke, text if spoke else "", 0 if spoke else 5,
                                   events.get(t, ""), 0.8 if spoke else 0.05 + 0.001 * k))
    return run


def episodes() -> list[Episode]:
    return [Episode(EpisodeMeta(v, "test", task, duration_s=dur), TaskSpec("", "", STEPS[task], task),
                    references=[Turn(t, x, k) for t, x, k in refs])
            for v, (task, dur, _, refs, _, _) in VIDEOS.items()]


def build(monkeypatch, thetas: list[float], vids: list[str] | None = None) -> tuple[dict, dict]:
    """metrics as evaluate._summarise assembles them (bags and output bags left out)."""
    monkeypatch.setattr(paper_metric, "minilm_embed", bow_embed)  # the default embedder of score_video
    vids = vids or list(VIDEOS)
    settings = evaluate.EvalSettings(model="hand-built", thetas=thetas)
    by_theta = {t: [make_run(v, t) for v in vids] for t in thetas}
    per_theta = {f"{t:g}": evaluate._theta_summary(by_theta[t], settings) for t in thetas}
    first = by_theta[thetas[0]]
    scored = any(r.has_references for r in first)
    best = (select_theta(thetas, [per_theta[f"{t:g}"]["overall"]["f1"] for t in thetas])
            if scored and len(thetas) > 1 else thetas[0])
    metrics = {
        "settings": {"model": "hand-built", "thetas": thetas, "window_seconds": [-2.5, 2.5]},
        "videos": [{"video_id": r.video_id, "task_type": r.task_type, "split": r.split,
                    "duration_s": r.duration_s, "references": len(r.references),
                    "scored": r.has_references} for r in first],
        "metrics_skipped": [r.video_id for r in first if not r.has_references],
        "thetas": per_theta, "theta_selected": best, "best": per_theta[f"{best:g}"]["overall"],
        "baselines": evaluate._baselines([e for e in episodes() if e.meta.video_id in vids], settings),
    }
    return metrics, by_theta


def images(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def check_pngs(out: Path, html: str) -> dict[str, np.ndarray]:
    """Every <img> is a relative plots/ PNG that exists, every PNG written is shown; sane sizes."""
    srcs = images(html)
    assert all(s.startswith("plots/") for s in srcs), srcs
    assert sorted(srcs) == sorted(f"plots/{p.name}" for p in (out / "plots").glob("*.png"))
    pix = {}
    for s in srcs:
        a = imread(out / s)
        assert a.ndim == 3 and 300 <= a.shape[0] <= 1200 and 600 <= a.shape[1] <= 2000, (s, a.shape)
        assert a[..., :3].std() > 0.05, f"{s} looks blank"
        pix[s] = a
    return pix


def has_colour(a: np.ndarray, hex_colour: str, min_pixels: int = 10) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(a[..., :3] - rgb).max(axis=-1) < 0.02).sum()) >= min_pixels


def test_sweep_report_has_every_part(tmp_path, monkeypatch):
    metrics, by_theta = build(monkeypatch, [0.3, 0.5, 0.7])
    assert metrics["theta_selected"] == 0.5  # F1 0.5 (P 2/4, R 2/4) > θ 0.3's 0.4 and θ 0.7's 0.44
    at = metrics["thetas"]["0.5"]
    tea = at["per_video"]["tea_01"]
    assert sorted(p["correct"] for p in tea["pairs"]) == [False, True] and tea["redundant_preds"] == [2]
    other = {"model": "other-model", "theta": 0.7, **metrics["thetas"]["0.7"]["overall"]}  # a 2nd model's row
    metrics["baselines"]["compare_model"] = other
    path = report.write_report(tmp_path, metrics, by_theta)
    assert path == tmp_path / "report.html"
    html = path.read_text(encoding="utf-8")
    pix = check_pngs(tmp_path, html)
    assert {"plots/prf_vs_theta.png", "plots/latency.png"} <= set(pix)
    assert len([s for s in pix if "timeline" in s]) == 3
    for vid in VIDEOS:
        assert vid in html
    b = metrics["baselines"]
    for m in (metrics["best"], b["rule"], at["per_task_type"]["make_tea"]):
        assert f"{m['f1']:.3f}" in html and f"{m['precision']:.3f}" in html
    assert f"k = {b['rule']['k']:g} s" in html and "silent (never speaks)" in html
    assert re.search(rf"compare: other-model</td><td>θ = 0.7</td><td[^>]*>{other['precision']:.3f}</td>"
                     rf"<td[^>]*>{other['recall']:.3f}</td><td[^>]*>{other['f1']:.3f}</td>", html)
    assert "Metrics were skipped for 1 video(s) without references: noref_03" in html
    assert "metrics skipped (no references)" in html  # the per-video table row
    assert "selected θ = 0.5" in html and "1 − θ = 0.50" in html
    # utterance texts below the plot, escaped; the match outcomes are spelt out
    assert "wipe the table &lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html
    assert "P2 (below threshold" in html and "R2 (below threshold" in html and "missed" in html and "what next?" in html
    assert "<script" not in html and "http" not in html
    # the tea timeline draws a correct (green) and a filtered (orange) match
    tea_png = next(a for s, a in pix.items() if "tea_01" in s)
    assert has_colour(tea_png, report.plots.CORRECT) and has_colour(tea_png, report.plots.FILTERED)
    noref_png = next(a for s, a in pix.items() if "noref_03" in s)
    assert not has_colour(noref_png, report.plots.CORRECT)


def test_single_theta_has_no_theta_plot(tmp_path, monkeypatch):
    metrics, by_theta = build(monkeypatch, [0.5])
    html = report.write_report(tmp_path, metrics, by_theta).read_text(encoding="utf-8")
    check_pngs(tmp_path, html)
    assert not (tmp_path / "plots" / "prf_vs_theta.png").exists()
    assert "One θ (0.5) was evaluated: no plot against θ." in html
    assert f"{metrics['best']['f1']:.3f}" in html


def test_no_references_at_all_still_renders(tmp_path, monkeypatch):
    metrics, by_theta = build(monkeypatch, [0.3, 0.5], vids=["noref_03"])
    assert metrics["best"] is None and metrics["baselines"] == {}
    html = report.write_report(tmp_path, metrics, by_theta).read_text(encoding="utf-8")
    check_pngs(tmp_path, html)
    assert "No video has references" in html and "no plot against θ" in html
    assert "noref_03 — no references: metrics skipped" in html
    assert (tmp_path / "plots" / "latency.png").exists()


def test_timeline_cap_says_what_was_left_out(tmp_path, monkeypatch):
    metrics, by_theta = build(monkeypatch, [0.5])
    monkeypatch.setattr(report, "MAX_TIMELINES", 1)
    html = report.write_report(tmp_path, metrics, by_theta).read_text(encoding="utf-8")
    assert len([s for s in images(html) if "timeline" in s]) == 1
    assert "2 of 3 videos are left out of the timelines" in html


def test_mismatched_inputs_are_refused(tmp_path, monkeypatch):
    metrics, by_theta = build(monkeypatch, [0.5])
    with pytest.raises(ValueError, match="no runs at the selected θ 0.5"):
        report.write_report(tmp_path, metrics, {0.3: by_theta[0.5]})
    with pytest.raises(ValueError, match="lack"):
        report.write_report(tmp_path, {"videos": []}, by_theta)
    stale = {**metrics, "thetas": {"0.5": {**metrics["thetas"]["0.5"], "per_video": {}}}}
    with pytest.raises(ValueError, match="tea_01 has references but no per-video metrics"):
        report.write_report(tmp_path, stale, by_theta)
