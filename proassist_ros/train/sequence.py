"""Episode → training samples: the token layout of spec §1.6, IPS chunks of §3.2, labels of §4.1.

One episode gives one sample, or several when its sequence does not fit the context: the
inference engine summarises (IPS) once its KV cache reaches L − reserve, so training teaches
exactly that. A chunk whose body (everything before the summary request) would exceed
L − reserve is cut; it then ends with ``system("Please summarize the progress.")`` + the body's
last frame once more + ``assistant(summary)`` — what the engine's IPS feeds after a frame step
(the current frame embedded a second time, spec §3.1) — the whole chunk ≤ L; the next chunk
starts, like the engine after a summary, with ``BOS + system(prompt + " " + summary [+ " " +
knowledge])`` and a random 5–20 s of the frames before its first turn (the engine goes on with
the frame after the body; ``context_s`` (0, ∞) makes training do the same).

Summary at every reference (``summary_at_every_reference``, on for ``proassist train``): a chunk
also ends at every ``progress_summary`` reference whose chunk fits, although the context is not
full yet — as if the engine's IPS ran at that frame: the body up to the reference's frame, the
request, that frame again, the reference summary; the next chunk restarts from the summary exactly
where the engine would go on (the next frame, no 5–20 s trim, nothing dropped). Each sample is
then one engine stream from one IPS (or the start) to the next, so every reference is learned
once per knowledge variant instead of only where a long video overflows (docs/training.md,
"Summary at every reference"). Length cuts still happen between references farther apart than
L − reserve; the context kept after one then leads up to the next turn or the next reference,
whichever comes first, so no reference is skipped.

Where a chunk must end for length (docs/training.md, "Chunking"): after an assistant turn, as in
the paper — the latest such point that fits — unless a ``progress_summary`` reference lies inside
the chunk late enough (≥ ``fresh_share`` of the longest fitting body): then it ends at that reference's
frame, so the summary the model learns describes exactly what it has seen. The summary at any
other end is the latest reference at or before the request frame, or, with none, one built in
the spec's format (elapsed time, goal, steps done when the bag records them). A question is
never split from its reply. When not even one assistant turn fits (a long silent stretch), the
chunk ends inside the frames, as IPS would at inference, and the skipped frames are dropped (as
the paper drops an oversized clip).
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from proassist_ros.data.episode import Episode, is_spoken, spoken_references
from proassist_ros.engine.config import DEFAULT_SYSTEM_PROMPT, SUMMARY_QUERY, EngineConfig
from proassist_ros.engine.context import system_content
from proassist_ros.model.chat import ChatFormat

from .layout import IGNORE, Placed, Renderer, place_turns

__all__ = ["IGNORE", "Sample", "SequenceConfig", "build_samples", "built_summary"]


@dataclass(frozen=True)
class SequenceConfig:
    """Layout knobs. ``context_limit``/``reserve`` must match the engine the model will run in."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    context_limit: int = 4096
    reserve: int = 128
    fps: float = 2.0
    context_s: tuple[float, float] = (5.0, 20.0)   # frames kept before a later chunk's first turn
    fresh_share: float = 0.5
    # End a chunk with an IPS summary turn at every progress_summary reference (when it fits),
    # not only when the context overflows. Off here (one sample per episode that fits, the
    # layout of docs/training.md's worked example); on in TrainConfig for new runs.
    summary_at_every_reference: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.reserve < self.context_limit // 2:
            raise ValueError(f"reserve {self.reserve} must be in [0, context_limit/2)")
        lo, hi = self.context_s
        if not 0 <= lo <= hi:
            raise ValueError(f"context_s {self.context_s} must be 0 ≤ low ≤ high seconds")


@dataclass
class Sample:
    """One training sequence.

    ``labels`` are pre-shifted: ``labels[p]`` is the target for position p (what token p+1 is),
    ``IGNORE`` (−100) where nothing is learned. ``frames[k]`` is the feature row of the k-th frame
    in the sequence (each fills I ``<image>`` slots). ``negatives`` lists, per frames turn, the
    positions of its in-turn negative decision points (labels hold the silence id there; NFS
    masks most of them each epoch).
    """

    video_id: str
    chunk: int
    knowledge: bool
    input_ids: list[int]
    labels: list[int]
    frames: list[int]
    negatives: list[list[int]]
    summary: str = ""            # the progress summary this chunk ends with ("" = the last chunk)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)


def built_summary(episode: Episode, t: float) -> str:
    """A progress summary in the spec's format (§3.1) from what the episode records."""
    parts = [f"The time elapsed since the start of the task is {t:.1f} seconds."]
    goal = episode.task.goal.strip() if episode.task else ""
    if goal:
        parts.append(f"The user's goal: {goal.rstrip('.')}.")
    steps = [s for s in episode.meta.extra.get("steps", []) if isinstance(s, dict)]
    done = [str(s.get("text", "")).strip().rstrip(".") for s in steps
            if float(s.get("t_end", float("inf"))) <= t and s.get("text")]
    if done:
        parts.append("So far they have done: " + "; ".join(done) + ".")
    return " ".join(parts)


@dataclass
class _End:
    turns: int          # turns[i:turns] are in the chunk
    frame: int          # the first frame after the body (where the next chunk may start)
    summary: str
    body: int           # tokens before the summary request
    at_reference: bool = False  # chosen for a reference (the context had room), not for length

    @property
    def request_frame(self) -> int:
        """The frame after the summary query: the body's last frame again, as the engine's IPS
        embeds the frame it has just decided on a second time (spec §3.1 step 1)."""
        return self.frame - 1


class _Planner:
    def __init__(self, episode: Episode, times: Sequence[float], chat: ChatFormat,
                 turns: list[Placed], cfg: SequenceConfig) -> None:
        self.ep, self.times, self.chat, self.turns, self.cfg = episode, list(times), chat, turns, cfg
        self.per = chat.tokens_per_frame
        self.lens = [len(chat.message_ids(t.role, t.text)) for t in turns]
        self.query_len = len(chat.message_ids("system", SUMMARY_QUERY)) + self.per
        refs = sorted((r.t, r.text.strip()) for r in episode.references
                      if not is_spoken(r.kind) and r.text.strip())
        self.sum_t = [t for t, _ in refs]
        self.sum_text = [s for _, s in refs]
        # A reference describes the state at its time: its frame is the last one at or before it,
        # and a chunk that ends there has that frame last in its body (the request repeats it).
        self.fresh = {max(bisect.bisect_right(self.times, t) - 1, 0): s for t, s in refs}
        self.ref_frames = sorted(self.fresh)
        self._reply_len: dict[str, int] = {}

    def reply_len(self, text: str) -> int:
        if text not in self._reply_len:
            self._reply_len[text] = len(self.chat.message_ids("assistant", text))
        return self._reply_len[text]

    def summary_at(self, f: int) -> tuple[str, bool]:
        if f in self.fresh:
            return self.fresh[f], True
        k = bisect.bisect_right(self.sum_t, self.times[f]) - 1
        return (self.sum_text[k], False) if k >= 0 else (built_summary(self.ep, self.times[f]), False)

    def final_body(self, i: int, start: int, prefix: int) -> int:
        return prefix + sum(self.lens[i:]) + self.per * max(self.turns[-1].gap - start, 0)

    def _walk(self, i: int, start: int, prefix: int):
        """(f, q, body, open question) for each candidate end f ≥ start whose body fits
        L − reserve: frames start..f−1 and turns[i:q] (those before frame f, and a reply right
        after frame f−1) are in the body."""
        q, cum, open_question = i, 0, False
        turns, cfg = self.turns, self.cfg
        for f in range(start, len(self.times)):
            while q < len(turns) and (turns[q].gap < f or (turns[q].gap == f and turns[q].role == "assistant")):
                cum += self.lens[q]
                if turns[q].role == "assistant":
                    open_question = False
                elif turns[q].needs_answer:
                    open_question = True
                q += 1
            body = prefix + cum + self.per * (f - start)
            if body > cfg.context_limit - cfg.reserve:
                return
            yield f, q, body, open_question

    def at_reference(self, i: int, start: int, prefix: int) -> _End | None:
        """The chunk end at the next ``progress_summary`` reference (summary_at_every_reference):
        the body's last frame is the reference's frame (or, when a question there still waits
        for its reply, the first frame after the reply), then the request and the summary.
        None when the context fills first (``choose`` cuts for length) or when no assistant
        turn would follow (the sequence ends with the last reply)."""
        k = bisect.bisect_left(self.ref_frames, start)
        if k == len(self.ref_frames):
            return None
        target = self.ref_frames[k] + 1   # f: the reference's frame is the body's last
        for f, q, body, open_question in self._walk(i, start, prefix):
            if f < target or open_question:
                continue
            if q >= len(self.turns):
                return None
            text, _ = self.summary_at(f - 1)
            if body + self.query_len + self.reply_len(text) > self.cfg.context_limit:
                return None
            return _End(q, f, text, body, at_reference=True)
        return None

    def choose(self, i: int, start: int, prefix: int) -> _End:
        cfg, turns = self.cfg, self.turns
        best: dict[str, _End] = {}
        for f, q, body, open_question in self._walk(i, start, prefix):
            if open_question or f == start:  # no frame in the body yet: nothing to repeat
                continue
            text, fresh = self.summary_at(f - 1)  # at the request frame: the body's last
            if body + self.query_len + self.reply_len(text) > cfg.context_limit:
                continue
            end = _End(q, f, text, body)
            best["any"] = end
            if fresh:
                best["fresh"] = end
            if q > i and turns[q - 1].role == "assistant" and turns[q - 1].gap == f:
                best["after"] = end
        fresh, any_ = best.get("fresh"), best.get("any")
        if fresh and fresh.body >= cfg.fresh_share * any_.body:
            return fresh
        for kind in ("after", "fresh", "any"):
            if kind in best:
                return best[kind]
        nxt = turns[i]
        raise ValueError(
            f"{self.ep.meta.video_id}: context limit {cfg.context_limit} (reserve {cfg.reserve}) is "
            f"too small: no chunk fits before the {nxt.role} turn at {nxt.t:.1f}s "
            f"(prefix {prefix} tokens, turn {self.lens[i]} tokens, I={self.per})")


def build_samples(episode: Episode, times: Sequence[float], chat: ChatFormat, *, knowledge: bool,
                  cfg: SequenceConfig = SequenceConfig(), seed: int = 0) -> list[Sample]:
    """The training samples of one episode whose sampled frames are at ``times`` (stream s).

    ``knowledge``: feed the recipe (``"Task knowledge: ..."``) after the goal; the paper's ×2 mix
    uses every episode once with and once without. ``seed`` draws the later chunks' context.
    """
    vid = episode.meta.video_id
    if not spoken_references(episode):
        raise ValueError(f"{vid}: has no /proassist/reference turns; training needs reference "
                         "assistant turns")
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError(f"{vid}: frame times must be non-decreasing")
    placement = place_turns(episode, times, knowledge)
    turns = placement.turns
    while turns and turns[-1].role != "assistant":  # the sequence ends with the last reply
        gone = turns.pop()
        placement.dropped.append(f"{gone.role} turn at {gone.t:.2f}s after the last reply")
    if not any(t.role == "assistant" for t in turns):
        raise ValueError(f"{vid}: no reference assistant turn could be placed on its "
                         f"{len(times)} frames ({'; '.join(placement.dropped) or 'none left'})")
    plan = _Planner(episode, times, chat, turns, cfg)
    rng = np.random.default_rng([seed, zlib.crc32(vid.encode()), int(knowledge)])
    engine_cfg = EngineConfig(system_prompt=cfg.system_prompt)
    prefix = chat.bos_ids() + chat.message_ids("system", cfg.system_prompt)
    samples: list[Sample] = []
    i, start, seen = 0, 0, None
    while i < len(turns):
        if (i, start) == seen:
            raise ValueError(f"{vid}: chunking makes no progress at the turn at {turns[i].t:.1f}s "
                             f"(context limit {cfg.context_limit} too small)")
        seen = (i, start)
        r = Renderer(chat)
        r.plain(prefix)
        end = plan.at_reference(i, start, len(prefix)) if cfg.summary_at_every_reference else None
        if end is None and plan.final_body(i, start, len(prefix)) > cfg.context_limit - cfg.reserve:
            end = plan.choose(i, start, len(prefix))
        cur = start
        for turn in turns[i:len(turns) if end is None else end.turns]:
            r.frames(range(cur, turn.gap), turn.role)
            cur = max(cur, turn.gap)
            r.message(turn.role, turn.text)
        if end is not None:
            r.frames(range(cur, end.frame), "system")
            r.message("system", SUMMARY_QUERY)
            r.frames([end.request_frame], "assistant")
            r.message("assistant", end.summary)
        out = r.out
        samples.append(Sample(vid, len(samples), knowledge, out.input_ids, out.labels, out.frames,
                              out.negatives, end.summary if end else "",
                              list(placement.dropped) if not samples else []))
        if end is None:
            break
        klg = next((t.text for t in turns[:end.turns] if t.is_knowledge), "")
        prefix = chat.bos_ids() + chat.message_ids("system", system_content(engine_cfg, end.summary, klg))
        i = end.turns
        if end.at_reference:  # the engine goes on with the next frame; nothing had to be cut
            start = end.frame
            continue
        ctx = int(round(rng.uniform(*cfg.context_s) * cfg.fps))
        nxt = turns[i].gap  # the context is kept before the next turn ...
        if cfg.summary_at_every_reference:  # ... or the next reference, which must not be skipped
            k = bisect.bisect_left(plan.ref_frames, end.frame)
            if k < len(plan.ref_frames):
                nxt = min(nxt, plan.ref_frames[k] + 1)
        start = max(end.frame, nxt - ctx)
        if turns[i].role == "assistant":
            start = min(start, turns[i].gap - 1)
    return samples
