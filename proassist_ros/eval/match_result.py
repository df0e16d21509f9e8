"""Results of ProAssist's pairwise matching (spec §5.1): per-video, summed over videos, macro-averaged.

A `MatchResult` keeps the matched pairs and the indices of missed / redundant utterances, and
derives every rate from them. Summing videos (`aggregate`) therefore stays exact: counts add up and
semantic_score / time_diff are means over the pooled correct pairs, as the original's
``compute_metrics`` pools a whole subset before dividing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from proassist_ros.eval.nlg import corpus_bleu

RATE_NAMES = (
    "precision", "recall", "f1", "jaccard", "missing_rate", "redundant_rate", "semantic_score", "time_diff",
)
COUNT_NAMES = ("matched", "matched_before_filter", "missed", "redundant")
BLEU_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4")
# Content-exact (eval/content.py): None where the videos have no world vocabulary.
CONTENT_NAMES = ("precision_content", "recall_content", "f1_content", "content_right_share")
CONTENT_NOT_AVAILABLE = "content-exact: not available"


def _ratio(num: float, den: float) -> float:
    """0 for an empty denominator, as the original evaluator does (no predictions → P = 0)."""
    return num / den if den > 0 else 0.0


@dataclass(frozen=True)
class MatchedPair:
    """One prediction assigned to one reference (before the semantic filter).

    Indices point into the ``predictions`` / ``references`` sequences of the video the pair
    comes from (after `aggregate`, into that pair's own video).
    """

    pred_index: int
    ref_index: int
    pred_time: float
    ref_time: float
    score: float  # semantic similarity s = 1 − C (cosine, or |cosine| with the abs_cosine quirk)
    cost: float  # the assignment cost C + D of this pair
    correct: bool  # s > semantic_threshold
    time_diff: float  # |frame_pred − frame_ref| / fps, seconds (the original's time_diff)
    pred_text: str
    ref_text: str
    ref_kind: str = ""  # the reference's kind (instruction, answer, ...) when the scorer knew it
    content_exact: bool | None = None  # the prediction says what the reference says (None: unknown)
    pred_content: str = ""  # the content keys compared (eval/content.py), for reading
    ref_content: str = ""


@dataclass(frozen=True)
class MatchResult:
    """Counts and rates of one video (or of several, after `aggregate`).

    ``denominators_include_filtered`` (default True, spec §5.1's formulas): a matched pair that
    fails the semantic filter still counts as a predicted and as a reference utterance, so
    precision = correct / all predictions and recall = correct / all references. False drops such
    pairs from both denominators (precision = correct / (correct + redundant)).
    ``semantic_score_inclusive`` (original quirk): semantic_score averages pairs with s ≥ θ_s
    instead of the correct pairs (s > θ_s).

    Content-exact (``content_available``, set by ``eval.scoring.score_video`` for task-world
    bags): a correct pair counts again only if its ``content_exact``; P, R and F1 of those with the
    paper's denominators, and the share of correct pairs right in content. Not available: None,
    with ``content_note`` saying why. ``missed_kinds`` are the kinds of the missed references (in
    ``missed_refs`` order), for the per-kind numbers.
    """

    pairs: tuple[MatchedPair, ...] = ()
    missed_refs: tuple[int, ...] = ()
    redundant_preds: tuple[int, ...] = ()
    semantic_threshold: float = 0.5
    denominators_include_filtered: bool = True
    semantic_score_inclusive: bool = False
    num_videos: int = 1
    missed_kinds: tuple[str, ...] = ()
    content_available: bool = False
    content_note: str = CONTENT_NOT_AVAILABLE
    correct_pairs: tuple[MatchedPair, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "correct_pairs", tuple(p for p in self.pairs if p.correct))

    # -- counts ------------------------------------------------------------------------------
    @property
    def matched(self) -> int:
        """Correct pairs (the original's ``num_matched``)."""
        return len(self.correct_pairs)

    @property
    def matched_before_filter(self) -> int:
        return len(self.pairs)

    @property
    def missed(self) -> int:
        return len(self.missed_refs)

    @property
    def redundant(self) -> int:
        return len(self.redundant_preds)

    @property
    def _pairs_in_denominators(self) -> int:
        return self.matched_before_filter if self.denominators_include_filtered else self.matched

    # -- rates -------------------------------------------------------------------------------
    @property
    def precision(self) -> float:
        return _ratio(self.matched, self._pairs_in_denominators + self.redundant)

    @property
    def recall(self) -> float:
        return _ratio(self.matched, self._pairs_in_denominators + self.missed)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    @property
    def jaccard(self) -> float:
        return _ratio(self.matched, self._pairs_in_denominators + self.missed + self.redundant)

    @property
    def missing_rate(self) -> float:
        return _ratio(self.missed, self._pairs_in_denominators + self.missed)

    @property
    def redundant_rate(self) -> float:
        return _ratio(self.redundant, self._pairs_in_denominators + self.redundant)

    @property
    def semantic_score(self) -> float:
        if self.semantic_score_inclusive:
            scores = [p.score for p in self.pairs if p.score >= self.semantic_threshold]
        else:
            scores = [p.score for p in self.correct_pairs]
        return _ratio(sum(scores), len(scores))

    @property
    def time_diff(self) -> float:
        return _ratio(sum(p.time_diff for p in self.correct_pairs), self.matched)

    # -- content-exact (eval/content.py) ----------------------------------------------------
    @property
    def content_matched(self) -> int:
        """Correct pairs whose prediction is right in content (the content-exact F1's TP)."""
        return sum(1 for p in self.correct_pairs if p.content_exact)

    @property
    def precision_content(self) -> float | None:
        if not self.content_available:
            return None
        return _ratio(self.content_matched, self._pairs_in_denominators + self.redundant)

    @property
    def recall_content(self) -> float | None:
        if not self.content_available:
            return None
        return _ratio(self.content_matched, self._pairs_in_denominators + self.missed)

    @property
    def f1_content(self) -> float | None:
        if not self.content_available:
            return None
        p, r = self.precision_content, self.recall_content
        return _ratio(2 * p * r, p + r)

    @property
    def content_right_share(self) -> float | None:
        """Of the correct pairs, the share right in content (None: not available or none correct)."""
        if not self.content_available or not self.matched:
            return None
        return self.content_matched / self.matched

    def content_dict(self) -> dict:
        out: dict = {"content_available": self.content_available,
                     **{name: getattr(self, name) for name in CONTENT_NAMES},
                     "content_matched": self.content_matched if self.content_available else None}
        if not self.content_available:
            out["content_note"] = self.content_note
        return out

    def per_kind(self) -> dict[str, dict]:
        """Per kind of reference: references, correct pairs, recall, and their content-exact part.

        Only for kinds the scorer named (``ref_kind``, ``missed_kinds``); precision has no kind
        (a redundant prediction answers no reference), so there is none per kind.
        """
        kinds = sorted({p.ref_kind for p in self.pairs if p.ref_kind} | {k for k in self.missed_kinds if k})
        out = {}
        for kind in kinds:
            pairs = [p for p in self.pairs if p.ref_kind == kind]
            correct = [p for p in pairs if p.correct]
            den = (len(pairs) if self.denominators_include_filtered else len(correct)) + \
                self.missed_kinds.count(kind)
            exact = sum(1 for p in correct if p.content_exact)
            row = {"references": len(pairs) + self.missed_kinds.count(kind), "matched": len(correct),
                   "recall": _ratio(len(correct), den)}
            if self.content_available:
                row.update(content_matched=exact, recall_content=_ratio(exact, den),
                           content_right_share=exact / len(correct) if correct else None)
            out[kind] = row
        return out

    def bleu(self) -> dict[str, float]:
        """Corpus BLEU-1..4 of the correct pairs (prediction vs its matched reference)."""
        return corpus_bleu([p.pred_text for p in self.correct_pairs], [p.ref_text for p in self.correct_pairs])

    def to_dict(self, *, with_pairs: bool = False) -> dict:
        """Plain JSON-ready dict for metrics.json: rates, counts, BLEU, settings (+ pairs if asked)."""
        out: dict = {name: getattr(self, name) for name in (*RATE_NAMES, *COUNT_NAMES)}
        out.update(self.bleu())
        out.update(self.content_dict())
        kinds = self.per_kind()
        if kinds:
            out["per_kind"] = kinds
        out.update(
            num_videos=self.num_videos,
            semantic_threshold=self.semantic_threshold,
            denominators_include_filtered=self.denominators_include_filtered,
            semantic_score_inclusive=self.semantic_score_inclusive,
        )
        if with_pairs:
            out["pairs"] = [{f.name: getattr(p, f.name) for f in fields(p)} for p in self.pairs]
            out["missed_refs"] = list(self.missed_refs)
            out["redundant_preds"] = list(self.redundant_preds)
        return out


def aggregate(results: Sequence[MatchResult]) -> MatchResult:
    """Sum videos (of one subset): counts add, rates are recomputed from the pooled pairs."""
    if not results:
        raise ValueError("aggregate() needs at least one MatchResult")
    first = results[0]
    settings = ("semantic_threshold", "denominators_include_filtered", "semantic_score_inclusive")
    for i, r in enumerate(results):
        diff = [s for s in settings if getattr(r, s) != getattr(first, s)]
        if diff:
            raise ValueError(f"cannot aggregate results with different settings: results[{i}] differs in {diff}")
    return MatchResult(
        pairs=tuple(p for r in results for p in r.pairs),
        missed_refs=tuple(i for r in results for i in r.missed_refs),
        redundant_preds=tuple(i for r in results for i in r.redundant_preds),
        num_videos=sum(r.num_videos for r in results),
        missed_kinds=tuple(k for r in results for k in r.missed_kinds),
        content_available=all(r.content_available for r in results),
        content_note=_pooled_content_note(results),
        **{s: getattr(first, s) for s in settings},
    )


def _pooled_content_note(results: Sequence[MatchResult]) -> str:
    """Why a pool has no content-exact numbers: one video without a world vocabulary is enough."""
    lacking = [r for r in results if not r.content_available]
    notes = sorted({r.content_note for r in lacking})
    if not lacking:
        return ""
    if len(notes) == 1 and len(lacking) == len(results):
        return notes[0]
    n, total = sum(r.num_videos for r in lacking), sum(r.num_videos for r in results)
    return f"{CONTENT_NOT_AVAILABLE} ({n} of {total} videos have no world vocabulary)"


def macro_average(by_subset: Mapping[str, MatchResult]) -> dict:
    """The paper's headline numbers: the plain mean over subsets of each subset's metrics.

    F1 is the mean of the subsets' F1s, not the harmonic mean of the mean P and R (spec §5.1,
    "Aggregation across subsets"); counts become fractional means, like the original's
    ``results_present.yaml``.
    """
    if not by_subset:
        raise ValueError("macro_average() needs at least one subset")
    per_subset = {name: r.to_dict() for name, r in by_subset.items()}
    keys = (*RATE_NAMES, *COUNT_NAMES, *BLEU_NAMES)
    out: dict = {k: sum(d[k] for d in per_subset.values()) / len(per_subset) for k in keys}
    for k in CONTENT_NAMES:  # None when some subset has none (not available, or no correct pair)
        vals = [d[k] for d in per_subset.values()]
        out[k] = None if any(v is None for v in vals) else sum(vals) / len(vals)
    out["subsets"] = sorted(per_subset)
    out["per_subset"] = per_subset
    return out
