"""Where each turn of an episode enters the token stream, and how a piece of it is rendered.

Training sequences must be exactly what ``AssistantSession`` feeds at inference
(docs/engine.md), so placement follows the engine's rules, not the bag's raw times:

- the task goal is a user turn before the first frame, the recipe a system
  ``"Task knowledge: ..."`` message right after it (``set_task``); a user utterance equal to the
  goal is not fed again;
- any other user turn enters right before the first frame whose stamp is ≥ its time;
- an assistant turn at time t comes right after the last frame whose stamp is ≤ t, and at least
  one frame after the previous turn of any role (spec §1.6: two turns on one frame push the
  later one to the next frame), so every reply follows a decision point.

Positions are *gaps*: gap g is the point right before frame g (gap N is after the last frame).
Rendering writes pre-shifted labels (spec §1.6): ``labels[p]`` is the target of position p, i.e.
what token p+1 should be — the convention of ProAssist's collator.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from proassist_ros.data.episode import Episode, spoken_references
from proassist_ros.engine.knowledge import knowledge_message
from proassist_ros.engine.session import same_text  # the engine's own goal-repeat test
from proassist_ros.model.chat import ChatFormat

IGNORE = -100

# How this layout ends a turn, as engine settings (``EngineConfig`` field names): a reply is laid
# out as ``reply<eot>`` followed by the next frame (``Renderer.message``; spec §1.6), so a model
# trained on it must run with the end-of-turn token fed after each reply — the opposite of the
# released ProAssist checkpoints' inference (spec P1). Every checkpoint trained here records these
# next to its other defaults (``proassist train``'s ``model/`` and ``adapter/``, ``train.ship``),
# and ``model.loader.default_settings`` → ``engine.config.model_settings`` give them to the engine.
TRAINED_LAYOUT: dict[str, bool] = {"append_eot_after_reply": True}


@dataclass(frozen=True)
class Placed:
    """One turn at its gap. ``needs_answer``: a user turn whose reply must stay in its chunk."""

    gap: int
    role: str                 # "user" | "assistant" | "system"
    text: str
    t: float
    needs_answer: bool = False
    is_knowledge: bool = False


@dataclass
class Placement:
    turns: list[Placed]
    dropped: list[str] = field(default_factory=list)   # why turns could not be placed


def place_turns(episode: Episode, times: Sequence[float], knowledge: bool) -> Placement:
    """Every user/assistant turn of ``episode`` at its gap on the frame grid ``times``."""
    n = len(times)
    if n == 0:
        raise ValueError(f"{episode.meta.video_id}: no frames to train on")
    out = Placement([])
    period = (times[-1] - times[0]) / (n - 1) if n > 1 else 0.5
    goal = episode.task.goal.strip() if episode.task else ""
    recipe = episode.task.knowledge.strip() if (episode.task and knowledge) else ""
    if goal:
        out.turns.append(Placed(0, "user", goal, float("-inf")))
        if recipe:
            out.turns.append(Placed(0, "system", knowledge_message(recipe), float("-inf"),
                                    is_knowledge=True))
            recipe = ""
    # Equal times: the user turn first (the bag's order: a user turn precedes the frame, a reply
    # follows it).
    events = [(u.t, 0, "user", u.text.strip()) for u in episode.user_turns if u.text.strip()]
    events += [(r.t, 1, "assistant", r.text.strip()) for r in spoken_references(episode)
               if r.text.strip()]
    prev = 0 if out.turns else -1
    for t, _, role, text in sorted(events, key=lambda e: (e[0], e[1])):
        if role == "user":
            if goal and same_text(text, goal):
                continue
            gap = max(bisect.bisect_left(times, t), prev, 0)
            if gap >= n:
                out.dropped.append(f"user turn at {t:.2f}s after the last frame ({times[-1]:.2f}s)")
                continue
            out.turns.append(Placed(gap, "user", text, t, needs_answer=True))
            if recipe:  # knowledge waits for the first user turn when there is no goal
                out.turns.append(Placed(gap, "system", knowledge_message(recipe), t, is_knowledge=True))
                recipe = ""
        else:
            gap = max(bisect.bisect_right(times, t), prev + 1, 1)
            if t > times[-1] + period:
                out.dropped.append(f"assistant turn at {t:.2f}s after the last frame ({times[-1]:.2f}s)")
                continue
            if gap > n:
                out.dropped.append(f"assistant turn at {t:.2f}s: no frame left after the previous turn")
                continue
            out.turns.append(Placed(gap, "assistant", text, t))
        prev = gap
    return out


@dataclass
class Rendered:
    """One training sequence (see ``sequence.Sample`` for the meaning of the fields)."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    negatives: list[list[int]] = field(default_factory=list)


class Renderer:
    """Appends prefix, frames turns and messages to a ``Rendered``, labelling as it goes."""

    def __init__(self, chat: ChatFormat) -> None:
        self.chat = chat
        self.out = Rendered()

    def plain(self, ids: Sequence[int]) -> None:
        """Context the model reads but never learns (BOS, system, user)."""
        self.out.input_ids += list(ids)
        self.out.labels += [IGNORE] * len(ids)

    def message(self, role: str, text: str) -> None:
        ids = self.chat.message_ids(role, text)
        if role != "assistant":
            self.plain(ids)
            return
        if not self.out.input_ids or self.out.labels[-1] != self.chat.speak_id:
            raise AssertionError("an assistant turn must follow a speaking decision point")
        # Pre-shifted: every token of the turn after its first (the first is the decision
        # point's target), up to and including the closing end-of-turn token, which is also in
        # the input (TRAINED_LAYOUT: the engine feeds it too, append_eot_after_reply).
        self.out.input_ids += ids
        self.out.labels += ids[1:] + [IGNORE]

    def frames(self, rows: Sequence[int], next_role: str | None) -> None:
        """A frames turn: negatives at frames 0..n−2 (silence), then the last frame's decision:
        speak before an assistant turn, none before a user/system turn or the end."""
        if not rows:
            return
        chat, per = self.chat, self.chat.tokens_per_frame
        group: list[int] = []
        for k, row in enumerate(rows):
            self.out.input_ids += chat.image_ids(1)
            self.out.labels += [IGNORE] * per
            self.out.frames.append(int(row))
            pos = len(self.out.input_ids) - 1
            if k < len(rows) - 1:
                self.out.labels[pos] = chat.silence_id
                group.append(pos)
            elif next_role == "assistant":
                self.out.labels[pos] = chat.speak_id
        self.out.negatives.append(group)
