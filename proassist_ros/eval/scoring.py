"""Scoring one video: what the assistant said against the reference turns it should have said.

The one place where a video's utterances meet its references, shared by every path that reports
the paper's metric: ``proassist eval`` (offline runs and the silent / rule baselines,
eval/evaluate.py) and ``proassist replay`` / ``make demo`` (the live nodes' recorded Guidance,
eval/live.py). Only the *spoken* reference turns count (``data.episode.is_spoken``): a progress
summary is an IPS target, never said, so it can be neither matched nor missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from proassist_ros.data.episode import Turn, is_spoken
from proassist_ros.eval.metrics import Embed, MatchResult, pairwise_match

# What eval, replay and their reports say about a bag that cannot be scored or has no task.
NOT_SCORED_REASON = "no reference turns: not scored"
NO_TASK_NOTE = "no task in the bag: the session ran without a goal or recipe"


def spoken_utterances(references: Iterable[Turn]) -> list[tuple[float, str]]:
    """(time_s, text) of the spoken reference turns, in their order: what the metric matches."""
    return [(r.t, r.text) for r in references if is_spoken(r.kind)]


def score_video(predictions: Sequence[tuple[float, str]], references: Iterable[Turn], *,
                window_s: tuple[float, float], fps: float = 2.0,
                embed: Embed | None = None) -> MatchResult | None:
    """The paper's metric (``eval.metrics.pairwise_match``) for one video.

    ``predictions``: (time_s, text) of what was said; ``references``: the video's reference turns,
    all of them — the unspoken kinds are dropped here. None when no spoken reference is left:
    such a video has nothing to score (reported as ``metrics_skipped``), rather than a recall
    of 0/0.
    """
    refs = spoken_utterances(references)
    if not refs:
        return None
    return pairwise_match(predictions, refs, window_s=window_s, fps=fps, embed=embed)
