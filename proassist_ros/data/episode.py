"""Episode: one task video with its task, user turns, reference assistant turns and captions.

This is the in-memory form of one dataset bag (docs/dataset.md). The task-world generator
(`data/world/`) produces episodes; `data/dataset.py` writes them to ROS 2 bags and reads bags back
into episodes; evaluation and training consume them. Times are seconds of *stream time* from the
start of the video (the first frame is at ``t >= 0``); bags store ``t0 + t`` in header stamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from proassist_ros.constants import KIND_NAMES, KIND_PROGRESS_SUMMARY

# The reference turn kinds: ProAssist's dialogue acts (spec §6.1 `labels`), named as the
# Guidance kinds they are written as (constants.KIND_VALUES).
UNSPOKEN_KIND = KIND_NAMES[KIND_PROGRESS_SUMMARY]  # "progress_summary"


@dataclass
class TaskSpec:
    """What the wearer is doing: the goal (the user's first turn) and the recipe (knowledge)."""

    goal: str                      # "I want to make a cup of tea."
    knowledge: str                 # the recipe: "[task name]\n1. ...\n2. ..." (spec §6.1)
    steps: list[str]               # one line per step, in the recipe's order
    task_type: str = ""            # e.g. "make_tea"
    task_id: str = ""
    step_groups: list[int] = field(default_factory=list)  # equal numbers: may be done in any order


@dataclass
class Turn:
    """A timed utterance. For reference assistant turns ``kind`` is a name of KIND_VALUES."""

    t: float
    text: str
    kind: str = ""


@dataclass
class Caption:
    """What a frame shows (for vision pre-training): objects, their states, the current action."""

    t: float
    text: str


@dataclass
class EpisodeMeta:
    video_id: str
    split: str = ""                # train | val | test | "" (a user's own recording)
    task_type: str = ""
    seed: int = -1
    generator: str = ""            # e.g. "proassist_ros.world/1"
    duration_s: float = 0.0
    hz: float = 0.0                # camera rate
    width: int = 0
    height: int = 0
    has_mistake: bool = False
    long: bool = False             # the long subset (>= 10 min, IPS triggers)
    extra: dict = field(default_factory=dict)


@dataclass
class Episode:
    meta: EpisodeMeta
    task: TaskSpec | None
    user_turns: list[Turn] = field(default_factory=list)
    references: list[Turn] = field(default_factory=list)   # reference assistant turns
    captions: list[Caption] = field(default_factory=list)
    # Frames are produced lazily (a 10-minute video does not fit in memory as raw RGB):
    # calling it yields (t, rgb uint8 (H, W, 3)) in time order.
    frames: Callable[[], Iterator[tuple[float, np.ndarray]]] | None = None


def is_spoken(kind: str) -> bool:
    """Whether a reference turn of this kind is said to the wearer.

    Progress summaries are not: the paper keeps them as a turn's ``progress`` field, the target
    of an IPS summary (which goes to TaskState, never to speech). So they are never scored as
    utterances, never trained as replies, and never exported as turns. Every such filter in the
    package is this one.
    """
    return kind != UNSPOKEN_KIND


def spoken_references(episode: Episode) -> list[Turn]:
    """The reference turns the assistant should *say* (:func:`is_spoken`), in the episode's order."""
    return [r for r in episode.references if is_spoken(r.kind)]
