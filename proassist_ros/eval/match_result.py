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


@dataclass(frozen=True)
class MatchResult:
    """Counts and rates of one video (or of several, after `aggregate`).

    ``denominators_include_filtered`` (default True, spec §5.1's formulas): a matched pair that
    fails the semantic filter still counts as a predicted and as a reference utterance, so
    precision = correct / all predictions and recall = correct / all references. False drops such
    pairs from both denominators (precision = correct / (correct + redundant)).
    ``semantic_score_inclusive`` (original quirk): semantic_score averages pairs with s ≥ θ_s
    instead of the correct pairs (s > θ_s).
    """

    pairs: tuple[MatchedPair, ...] = ()
    missed_refs: tuple[int, ...] = ()
    redundant_preds: tuple[int, ...] = ()
    semantic_threshold: float = 0.5
    denominators_include_filtered: bool = True
    semantic_score_inclusive: bool = False
    num_videos: int = 1
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

    def bleu(self) -> dict[str, float]:
        """Corpus BLEU-1..4 of the correct pairs (prediction vs its matched reference)."""
        return corpus_bleu([p.pred_text for p in self.correct_pairs], [p.ref_text for p in self.correct_pairs])

    def to_dict(self, *, with_pairs: bool = False) -> dict:
        """Plain JSON-ready dict for metrics.json: rates, counts, BLEU, settings (+ pairs if asked)."""
        out: dict = {name: getattr(self, name) for name in (*RATE_NAMES, *COUNT_NAMES)}
        out.update(self.bleu())
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
        **{s: getattr(first, s) for s in settings},
    )


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
    out["subsets"] = sorted(per_subset)
    out["per_subset"] = per_subset
    return out
