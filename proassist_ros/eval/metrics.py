"""ProAssist's pairwise matching metric (spec §5.1) — what every P / R / F1 in the paper is.

Each predicted utterance is assigned to one reference utterance or to silence by a minimum-cost
full matching of the predictions, so a prediction can only "use up" one reference and vice versa.
A pair is *correct* when the sentence embeddings agree (s > 0.5); unassigned references are
*missed*, predictions assigned to silence are *redundant*. See docs/eval.md for every choice made
where the paper and the released code differ (spec P16).

Re-exports the result types (match_result), BLEU (nlg) and θ selection (theta) so that
``proassist_ros.eval.metrics`` is the one import.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from proassist_ros.eval.match_result import MatchedPair, MatchResult, aggregate, macro_average
from proassist_ros.eval.nlg import corpus_bleu, tokenize
from proassist_ros.eval.theta import select_theta, select_threshold

__all__ = [
    "DATASET_WINDOWS", "ORIGINAL_QUIRKS", "REFERENCE_GRIDS", "MatchResult", "MatchedPair", "aggregate",
    "corpus_bleu", "frame_index", "macro_average", "minilm_embed", "pairwise_match", "reference_frame_index",
    "select_theta", "select_threshold", "tokenize", "window_for",
]

Utterance = tuple[float, str]
Embed = Callable[[list[str]], Any]

# Spec §5.1 table (mmassist/eval/eval_utils.py::get_match_time_window), in seconds (left, right):
# a prediction may match a reference that comes up to `right` s after it or `-left` s before it.
# Checked in this order by substring, so "narration" wins over "ego4d" in "ego4d/narration".
DATASET_WINDOWS: dict[str, tuple[float, float]] = {
    "narration": (-2.5, 2.5),
    "ego4d": (-4.0, 8.5),
    "epickitchens": (-1.5, 3.0),
    "holoassist": (-1.5, 2.5),
    "egoexolearn": (-2.0, 3.5),
    "assembly101": (-2.0, 4.0),
    "wtag": (-3.0, 6.0),
    "default": (-2.5, 2.5),
}

# The released code's behaviour (spec P16), for reproducing its numbers: pairwise_match(..., **ORIGINAL_QUIRKS).
ORIGINAL_QUIRKS: dict[str, bool] = {
    "abs_cosine": True,
    "drop_zero_cost_edges": True,
    "int_window": True,
    "semantic_score_inclusive": True,
}

_EPS = 1e-9
_MINILM_BATCH = 128  # the original's sts_eval_batch_size


def window_for(dataset_name: str) -> tuple[float, float]:
    """The matching window (s) of a dataset, by case-insensitive substring; unknown → "default"."""
    name = dataset_name.lower()
    for key, window in DATASET_WINDOWS.items():
        if key != "default" and key in name:
            return window
    return DATASET_WINDOWS["default"]


def frame_index(time_s: float, fps: float) -> int:
    """Snap a time to the nearest stream-frame timestamp n/fps; n = floor(t·fps + 0.5).

    The stream's frame k has timestamp (k+1)/fps (spec §2.1), so n = k + 1 for an utterance
    stamped with its frame's timestamp (exactly, without float trouble). Only differences of n
    enter the metric, so the constant offset does not matter.
    """
    return math.floor(time_s * fps + 0.5)


# Where a reference utterance sits on the frame grid (``pairwise_match(reference_grid=...)``):
# "at_or_before" — the last frame at or before its time, where training puts its decision point
# (train/layout.py) and where the released code puts it (spec §1.6: a turn at t follows the
# frames [.., floor(t·fps)), and §2.1: a frame's reference is the assistant turn that follows
# it); "nearest" — the nearest frame (this project's metric before it was aligned).
REFERENCE_GRIDS = ("at_or_before", "nearest")


def reference_frame_index(time_s: float, fps: float) -> int:
    """The last stream-frame timestamp n/fps at or before a reference's time: n = floor(t·fps).

    A reference at t is said after the last frame the wearer has been seen at by then, so the
    model's decision point for it — where training labels "speak" — is that frame (spec §1.6).
    On the same n as :func:`frame_index` (a time exactly on a frame stays there; 1e-9 absorbs
    float error such as 7/3·3 = 6.999…).
    """
    return math.floor(time_s * fps + _EPS)


def minilm_embed(texts: list[str]) -> np.ndarray:
    """Default embedder: all-MiniLM-L6-v2 (the step tracker's), substituting the original's
    all-mpnet-base-v2, which cannot be shipped offline. Scores are therefore not identical to the
    paper's; pass ``embed=`` to use another model."""
    from proassist_ros.engine.embedder import shared_embedder

    model = shared_embedder()
    chunks = [model.encode(texts[i : i + _MINILM_BATCH]).numpy() for i in range(0, len(texts), _MINILM_BATCH)]
    return np.concatenate(chunks, axis=0)


def check_utterances(items: Sequence[Utterance], what: str) -> list[tuple[float, str]]:
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"{what}[{k}] must be a (time_s, text) pair, got {item!r}")
        t, text = item
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not math.isfinite(t):
            raise ValueError(f"{what}[{k}] has an invalid time {t!r} (a finite number of seconds is needed)")
        if t < 0:
            raise ValueError(f"{what}[{k}] has a negative time {t} s (times are seconds from the stream start)")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what}[{k}] has no text ({text!r}); silence is the absence of an utterance")
        out.append((float(t), text))
    return out


def _window_frames(window_s: tuple[float, float], fps: float, int_window: bool) -> tuple[int, int, float]:
    """(l, r, rg): the window in frames and the distance normaliser of D."""
    if len(window_s) != 2 or not all(math.isfinite(w) for w in window_s):
        raise ValueError(f"window_s must be two finite seconds (left, right), got {window_s!r}")
    left, right = window_s
    if not left <= 0 <= right:
        raise ValueError(f"window_s {window_s} must contain 0 (left <= 0 <= right) so a same-frame match is allowed")
    if int_window:  # the original: truncate toward zero, rg in whole frames
        l_f, r_f = int(left * fps), int(right * fps)
        rg = float(max(abs(l_f), r_f))
    else:  # every frame offset whose time offset lies inside the window; rg in exact frames
        l_f, r_f = math.ceil(left * fps - _EPS), math.floor(right * fps + _EPS)
        rg = max(abs(left), right) * fps
    if rg <= 0:
        raise ValueError(f"window_s {window_s} at {fps} fps is narrower than one frame on both sides")
    return l_f, r_f, rg


def _embed_checked(embed: Embed, texts: list[str]) -> np.ndarray:
    vecs = np.asarray(embed(texts), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise ValueError(f"embed returned shape {vecs.shape} for {len(texts)} texts; expected (N, dim)")
    if not np.isfinite(vecs).all():
        raise ValueError("embed returned non-finite values")
    norms = np.linalg.norm(vecs, axis=1)
    if np.abs(norms - 1.0).max() > 1e-3:
        raise ValueError(f"embed must return unit vectors; norms range {norms.min():.4f}..{norms.max():.4f}")
    return vecs


def pairwise_match(
    predictions: Sequence[Utterance],
    references: Sequence[Utterance],
    *,
    window_s: tuple[float, float] = (-2.5, 2.5),
    fps: float = 2.0,
    embed: Embed | None = None,
    semantic_threshold: float = 0.5,
    dist_power: float = 1.5,
    dist_factor: float = 0.3,
    abs_cosine: bool = False,
    drop_zero_cost_edges: bool = False,
    int_window: bool = False,
    semantic_score_inclusive: bool = False,
    denominators_include_filtered: bool = True,
    reference_grid: str = "at_or_before",
) -> MatchResult:
    """Match one video's predicted utterances to its reference utterances (spec §5.1).

    ``predictions`` / ``references``: sequences of ``(time_s, text)``. A prediction is on the frame
    it was said at (its time is that frame's stamp: :func:`frame_index`, the nearest grid point);
    a reference on the last frame at or before its time (:func:`reference_frame_index`, as
    training labels it and the released code places it; ``reference_grid="nearest"`` gives the
    nearest frame instead). A prediction at frame i may
    take a reference at frame j only if j − i lies in the window (D = ∞ outside); the cost of a
    pair is C + D with C = 1 − cos (1 − |cos| with ``abs_cosine``) and
    D = dist_factor·(|i − j| / rg)^dist_power, rg the window's larger half-width in frames. A
    prediction may instead take a *silent* frame in its window (C = 1 + D) and is then redundant.
    The remaining keyword flags reproduce the released code's quirks (``ORIGINAL_QUIRKS``).
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not (math.isfinite(dist_power) and dist_power > 0) or not (math.isfinite(dist_factor) and dist_factor >= 0):
        raise ValueError(f"need dist_power > 0 and dist_factor >= 0, got {dist_power!r}, {dist_factor!r}")
    if not math.isfinite(semantic_threshold):
        raise ValueError(f"semantic_threshold must be finite, got {semantic_threshold!r}")
    if reference_grid not in REFERENCE_GRIDS:
        raise ValueError(f"reference_grid must be one of {', '.join(REFERENCE_GRIDS)}, got {reference_grid!r}")
    preds = check_utterances(predictions, "predictions")
    refs = check_utterances(references, "references")
    l_f, r_f, rg = _window_frames(tuple(window_s), fps, int_window)
    settings = dict(semantic_threshold=semantic_threshold, denominators_include_filtered=denominators_include_filtered,
                    semantic_score_inclusive=semantic_score_inclusive)
    if not preds:
        return MatchResult(missed_refs=tuple(range(len(refs))), **settings)

    pf = np.array([frame_index(t, fps) for t, _ in preds])
    place = reference_frame_index if reference_grid == "at_or_before" else frame_index
    rf = np.array([place(t, fps) for t, _ in refs], dtype=int)

    def dist(offsets: np.ndarray) -> np.ndarray:
        """D for frame offsets j − i (∞ outside the window)."""
        d = dist_factor * (np.abs(offsets) / rg) ** dist_power
        return np.where((offsets >= l_f) & (offsets <= r_f), d, np.inf)

    # Reference columns: C + D.
    d_ref = dist(rf[None, :] - pf[:, None])  # (P, R)
    c_ref = np.zeros_like(d_ref)
    reach = np.isfinite(d_ref)
    if reach.any():
        pi, ri = np.nonzero(reach.any(axis=1))[0], np.nonzero(reach.any(axis=0))[0]
        vecs = _embed_checked(embed or minilm_embed, [preds[i][1] for i in pi] + [refs[j][1] for j in ri])
        cos = np.clip(vecs[: len(pi)] @ vecs[len(pi) :].T, -1.0, 1.0)
        c_ref[np.ix_(pi, ri)] = 1.0 - (np.abs(cos) if abs_cosine else cos)
    cost_ref = c_ref + d_ref
    if drop_zero_cost_edges:  # scipy's csr_matrix stores no explicit zeros: the edge vanishes
        cost_ref[cost_ref == 0.0] = np.inf

    # Silent columns: as in the original's one-row-per-frame matrix, a frame offers its references
    # and otherwise one silent slot; a frame with several predictions offers at least one slot per
    # prediction, so every prediction can always take a column of its own frame.
    n_pred, n_ref = Counter(pf.tolist()), Counter(rf.tolist())
    reachable = sorted({f for p in set(pf.tolist()) for f in range(max(0, p + l_f), p + r_f + 1)})
    silent = [f for f in reachable for _ in range(max(0, max(1, n_pred[f]) - n_ref[f]))]
    cost_silent = 1.0 + dist(np.array(silent, dtype=int)[None, :] - pf[:, None])

    from scipy.optimize import linear_sum_assignment

    cost = np.concatenate([cost_ref, cost_silent], axis=1)
    try:
        rows, cols = linear_sum_assignment(cost)
    except ValueError as e:  # only reachable with drop_zero_cost_edges, as in the original
        raise ValueError(f"no full matching of the predictions exists ({e}); drop_zero_cost_edges removed "
                         "the only column some prediction could take") from e

    pairs, taken = [], set()
    redundant = []
    for i, j in zip(rows.tolist(), cols.tolist()):
        if j >= len(refs):
            redundant.append(i)
            continue
        taken.add(j)
        score = 1.0 - float(c_ref[i, j])
        pairs.append(MatchedPair(
            pred_index=i, ref_index=j, pred_time=preds[i][0], ref_time=refs[j][0], score=score,
            cost=float(cost[i, j]), correct=score > semantic_threshold, time_diff=abs(int(pf[i]) - int(rf[j])) / fps,
            pred_text=preds[i][1], ref_text=refs[j][1],
        ))
    missed = tuple(j for j in range(len(refs)) if j not in taken)
    return MatchResult(pairs=tuple(pairs), missed_refs=missed, redundant_preds=tuple(sorted(redundant)), **settings)
