"""``decision_agreement_int8`` and ``f1_diff_int8`` of ``make bench``: does int8 decide like fp32?

Two measurements over the same bags (the test-split bags given with ``--agreement-bags``, else
the shipped sample bags; QUICK: one):

- teacher-forced agreement (``eval.agreement.teacher_forced``): an fp32 session runs over each
  bag as offline evaluation does (``eval.offline.run_episode``); every LLM call is replayed on
  the int8 LLM with its own cache; the share of calls whose P(silence) falls on the same side of
  θ is ``decision_agreement_int8``;
- the paper's F1 (``eval.scoring.score_video``, pooled with ``eval.metrics.aggregate``) of the
  free-running fp32 run (the one above) and of a free-running int8 run; ``f1_diff_int8`` is
  int8 − fp32. Free-running greedy replies diverge at the first near-tie (docs/performance.md,
  "int8"), so on a few bags this difference is mostly that divergence, not quantization.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import takewhile
from pathlib import Path
from typing import Any

from proassist_ros.engine import EngineConfig
from proassist_ros.engine.config import model_settings


def _f1(runs) -> dict:
    from proassist_ros.eval.metrics import aggregate, window_for
    from proassist_ros.eval.scoring import score_video

    window = window_for("default")
    scored = [m for m in (score_video(r.predictions, r.reference_turns, window_s=window, fps=2.0) for r in runs)
              if m is not None]
    if not scored:
        return {"f1": None, "videos": 0}
    overall = aggregate(scored)
    return {"f1": float(overall.f1), "precision": float(overall.precision), "recall": float(overall.recall),
            "matched": overall.matched, "missed": overall.missed, "redundant": overall.redundant,
            "videos": len(scored), "utterances": sum(len(r.predictions) for r in runs)}


def head(episode, max_s: float):
    """The episode's first ``max_s`` seconds (frames, user turns, references): reduced runs."""
    orig = episode.frames

    def frames(keep=None):
        return takewhile(lambda f: f[0] <= max_s, orig(keep=keep) if keep is not None else orig())

    def frames_plain():
        return takewhile(lambda f: f[0] <= max_s, orig())

    takes_keep = "keep" in inspect.signature(orig).parameters
    return replace(episode, frames=frames if takes_keep else frames_plain,
                   user_turns=[u for u in episode.user_turns if u.t <= max_s],
                   references=[r for r in episode.references if r.t <= max_s],
                   meta=replace(episode.meta, duration_s=min(episode.meta.duration_s, max_s)))


def int8_quality(model, int8_model, defaults: Mapping[str, Any], bags: Sequence[Path],
                 max_s: float | None = None) -> dict:
    """Teacher-forced decision agreement and the F1 of free-running fp32 / int8 runs
    (``max_s``: only each bag's first seconds, for reduced runs)."""
    from proassist_ros.data.dataset_read import read_episode
    from proassist_ros.eval.agreement import teacher_forced
    from proassist_ros.eval.offline import run_episode

    # the model's own θ and context limit, as eval.agreement and `proassist eval` run it
    cfg = EngineConfig(**model_settings(-1.0, 0, defaults, "ips"))
    episodes = [read_episode(b) for b in bags]
    if max_s:
        episodes = [head(e, max_s) for e in episodes]
    fp32_runs: list = []
    t0 = time.perf_counter()
    stats = teacher_forced(model, int8_model.llm,
                           lambda: fp32_runs.extend(run_episode(model, e, cfg) for e in episodes), cfg.theta)
    t1 = time.perf_counter()
    int8_runs = [run_episode(int8_model, e, cfg) for e in episodes]
    t2 = time.perf_counter()
    agreement = stats.summary()
    f1_fp32, f1_int8 = _f1(fp32_runs), _f1(int8_runs)
    diff = None if f1_fp32["f1"] is None or f1_int8["f1"] is None else f1_int8["f1"] - f1_fp32["f1"]
    return {"decision_agreement_int8": agreement["decision_agreement"], "f1_diff_int8": diff,
            "int8_quality": {"bags": [str(b) for b in bags], "max_s": max_s, "theta": cfg.theta,
                             "teacher_forced": agreement,
                             "f1_fp32": f1_fp32, "f1_int8": f1_int8,
                             "teacher_forced_s": t1 - t0, "int8_free_run_s": t2 - t1}}
