"""Scoring one video: what the assistant said against the reference turns it should have said.

The one place where a video's utterances meet its references, shared by every path that reports
the paper's metric: ``proassist eval`` (offline runs and the silent / rule baselines,
eval/evaluate.py) and ``proassist replay`` / ``make demo`` (the live nodes' recorded Guidance,
eval/live.py). Only the *spoken* reference turns count (``data.episode.is_spoken``): a progress
summary is an IPS target, never said, so it can be neither matched nor missed.

Beside the paper's metric it judges each matched pair's *content* from the task world's facts
(eval/content.py): given the bag's ``WorldVocabulary`` (``content.vocabulary_for(episode)``), a
pair is content-exact iff the prediction names the reference's step, objects, location and counts;
without one (not a world bag) the result says "content-exact: not available".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from proassist_ros.data.episode import Turn, is_spoken
from proassist_ros.eval.content import NOT_AVAILABLE, WorldVocabulary
from proassist_ros.eval.metrics import Embed, MatchResult, pairwise_match

# What eval, replay and their reports say about a bag that cannot be scored or has no task.
NOT_SCORED_REASON = "no reference turns: not scored"
NO_TASK_NOTE = "no task in the bag: the session ran without a goal or recipe"


def spoken_utterances(references: Iterable[Turn]) -> list[tuple[float, str]]:
    """(time_s, text) of the spoken reference turns, in their order: what the metric matches."""
    return [(r.t, r.text) for r in references if is_spoken(r.kind)]


def score_video(predictions: Sequence[tuple[float, str]], references: Iterable[Turn], *,
                window_s: tuple[float, float], fps: float = 2.0,
                embed: Embed | None = None, vocabulary: WorldVocabulary | None = None,
                ) -> MatchResult | None:
    """The paper's metric (``eval.metrics.pairwise_match``) for one video.

    ``predictions``: (time_s, text) of what was said; ``references``: the video's reference turns,
    all of them — the unspoken kinds are dropped here. None when no spoken reference is left:
    such a video has nothing to score (reported as ``metrics_skipped``), rather than a recall
    of 0/0.

    ``vocabulary``: the bag's world vocabulary (``eval.content.vocabulary_for``); with it every
    pair gets ``content_exact`` and the result its content-exact F1. Without it the result's
    content-exact numbers are None and its ``content_note`` says "content-exact: not available"
    (``vocabulary_for`` gives the reason). Every pair carries its reference's kind (``per_kind``).
    """
    spoken = [r for r in references if is_spoken(r.kind)]
    if not spoken:
        return None
    result = pairwise_match(predictions, [(r.t, r.text) for r in spoken], window_s=window_s, fps=fps,
                            embed=embed)
    kinds = [r.kind for r in spoken]
    pairs = []
    for p in result.pairs:
        p = replace(p, ref_kind=kinds[p.ref_index])
        if vocabulary is not None:
            pk, rk = vocabulary.key(p.pred_text), vocabulary.key(p.ref_text)
            p = replace(p, content_exact=vocabulary.exact(p.pred_text, p.ref_text), pred_content=str(pk),
                        ref_content=str(rk))
        pairs.append(p)
    return replace(result, pairs=tuple(pairs), missed_kinds=tuple(kinds[j] for j in result.missed_refs),
                   content_available=vocabulary is not None,
                   content_note="" if vocabulary is not None else NOT_AVAILABLE)
