"""Offline streaming evaluation of one episode: the node's loop without DDS, deterministic.

What the node does live, done from a bag: frames are kept on the 2 FPS grid of their header
stamps (``runtime.sampling.sampled_frames``: the node's own ``FpsGate``), the task is given
first, each user turn enters before the first frame at or after it (spec §2.4), and every kept
frame goes through ``AssistantSession.push_embedded`` one at a time (no catch-up: offline is
never behind). Vision features do not depend on the LLM, so they are computed in batches ahead
of the LLM.

The result, ``VideoRun``, holds per-frame P(speak), the predictions, the spoken references, the
task states, and the timings; ``eval.scoring.score_video`` turns it into the paper's metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch

from proassist_ros.constants import KIND_OTHER
from proassist_ros.data.episode import Episode, Turn, is_spoken, spoken_references
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.runtime.sampling import sampled_frames


@dataclass
class FrameLog:
    t: float                   # stream seconds
    p_speak: float             # 1 − P(silence)
    spoke: bool = False
    text: str = ""
    kind: int = KIND_OTHER
    context_event: str = ""
    latency_s: float = 0.0     # LLM time of this frame (its decision and any reply or summary)
    summary: str = ""          # the IPS progress summary made at this frame ("" when none or empty)


@dataclass
class VideoRun:
    """One episode through one model at one θ."""

    video_id: str
    task_type: str
    split: str
    duration_s: float
    theta: float
    frames: list[FrameLog] = field(default_factory=list)
    references: list[tuple[float, str, str]] = field(default_factory=list)  # spoken: (t, text, kind)
    user_turns: list[tuple[float, str]] = field(default_factory=list)
    task_states: list[tuple[float, dict]] = field(default_factory=list)     # on change
    summary_references: list[tuple[float, str]] = field(default_factory=list)  # progress_summary turns
    vision_s: float = 0.0
    llm_s: float = 0.0

    @property
    def predictions(self) -> list[tuple[float, str]]:
        return [(f.t, f.text) for f in self.frames if f.spoke]

    @property
    def has_references(self) -> bool:
        return bool(self.references)

    @property
    def reference_turns(self) -> list[Turn]:
        """``references`` as Turns, for ``eval.scoring.score_video``."""
        return [Turn(t, text, kind) for t, text, kind in self.references]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["predictions"] = self.predictions
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VideoRun:
        d = {k: v for k, v in d.items() if k != "predictions"}
        d["frames"] = [FrameLog(**f) for f in d["frames"]]
        d["references"] = [tuple(r) for r in d["references"]]
        d["user_turns"] = [tuple(u) for u in d["user_turns"]]
        d["task_states"] = [tuple(s) for s in d["task_states"]]
        d["summary_references"] = [tuple(s) for s in d.get("summary_references", [])]
        return cls(**d)


def _batches(it: Iterator, n: int) -> Iterator[list]:
    batch: list = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def run_episode(model, episode: Episode, cfg: EngineConfig, *, fps: float = 2.0,
                use_knowledge: bool = True, t0_ns: int = 0, vision_batch: int = 32,
                progress: Callable[[int], None] | None = None) -> VideoRun:
    """Stream one episode through a fresh session; see the module docstring for the rules."""
    meta = episode.meta
    run = VideoRun(meta.video_id, meta.task_type or (episode.task.task_type if episode.task else ""),
                   meta.split, meta.duration_s, cfg.theta,
                   references=[(r.t, r.text, r.kind) for r in spoken_references(episode)],
                   user_turns=[(u.t, u.text) for u in episode.user_turns],
                   summary_references=[(r.t, r.text) for r in episode.references
                                       if not is_spoken(r.kind) and r.text.strip()])
    session = AssistantSession(model, cfg)
    if episode.task is not None:
        session.set_task(episode.task.goal, episode.task.knowledge if use_knowledge else "",
                         episode.task.steps)
    pending = sorted(episode.user_turns, key=lambda u: u.t)
    last_state: tuple | None = None
    for batch in _batches(sampled_frames(episode, fps, t0_ns), vision_batch):
        t0 = time.perf_counter()
        with torch.inference_mode():
            feats = model.embed_frames([rgb for _, rgb in batch])  # (N, I, D)
        run.vision_s += time.perf_counter() - t0
        for k, (t, _) in enumerate(batch):
            while pending and pending[0].t <= t:
                u = pending.pop(0)
                session.push_user_utterance(u.text, u.t)
            t1 = time.perf_counter()
            r = session.push_embedded(feats[k:k + 1], [t])[0]
            dt = time.perf_counter() - t1
            run.llm_s += dt
            run.frames.append(FrameLog(t, 1.0 - r.p_silence, r.spoke, r.text, r.kind,
                                       r.context_event, dt, r.summary))
            state = session.task_state()
            key = (state.current_step_index, tuple(state.completed_steps), state.progress_summary,
                   state.last_guidance_seq, state.status)
            if key != last_state:
                run.task_states.append((t, asdict(state)))
                last_state = key
        if progress is not None:
            progress(len(batch))
    return run
