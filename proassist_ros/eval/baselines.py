"""Baselines printed beside every model, so that no number is read alone.

- ``silent``: never speaks. Precision is undefined (0 here), recall 0: the floor.
- ``rule``: says the next recipe step every k seconds of stream time (k = 2k, 3k, ... until the
  steps run out), starting at t = k. It knows the recipe but not the video; the best k is chosen
  on validation (``best_rule_k``), like θ for the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from proassist_ros.data.episode import Episode

RULE_KS = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)


def silent_predictions(episode: Episode) -> list[tuple[float, str]]:
    return []


def rule_predictions(episode: Episode, k: float) -> list[tuple[float, str]]:
    """The next step of the recipe every k seconds (nothing without a task)."""
    if k <= 0:
        raise ValueError(f"rule baseline period must be > 0 s, got {k}")
    steps = list(episode.task.steps) if episode.task else []
    end = episode.meta.duration_s or float("inf")
    out = []
    for i, step in enumerate(steps):
        t = k * (i + 1)
        if t > end:
            break
        out.append((t, step))
    return out


def best_rule_k(score: Callable[[float], float], ks: Sequence[float] = RULE_KS) -> float:
    """The k with the highest score (F1 on validation); ties go to the smaller k."""
    if not ks:
        raise ValueError("no k to choose from")
    return max(ks, key=lambda k: (score(k), -k))
