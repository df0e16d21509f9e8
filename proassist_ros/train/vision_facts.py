"""Stage 1 v2: what the task world knows about each cached frame, and the heads that learn it.

The v1 tower learns only from captions (SigLIP's loss), and the probe (``train/probe.py``) found
that its frame token cannot tell whether a step completed within the last second (AUC .52). The
generator knows much more than a caption says in words: when each step ends, which step is in
progress, every object's state and what the hand is doing. Stage 1 v2 (``preset="v2"``) adds
them as extra supervised targets, read by linear heads on the frame token the LLM sees
(``pooler_output``, ProAssist's token 1), so what they teach has to be linearly present in it —
the same question the probe asks. The heads are thrown away after stage 1 (saved beside the
tower only for inspection): at inference the model sees frames and text, nothing else.

Per frame, from the bag's facts (``meta.extra["steps"]``: ``t_start``/``t_end`` of each step) and,
when the bag names a world this generator can rebuild (``world{seed}_{split}_{index}``, same
generator version, same step times), from the world itself:

- ``completed``: a step ended within the last ``window_s`` (t − window < t_end ≤ t), the probe's (b);
- ``step``: "task:step" in progress, or "none";
- ``hand``: the hand's action and phase ("return:reach", "step:act", ...) — what a frame shows right
  after a step ends (the hand lets go, carries a thing back);
- ``states``: each object's state ("task/object" → "fill=water,open=False"), the probe's (c).

Steps need only the bag's facts, so a user's own bags with steps get the ``completed``/``step``
targets; ``hand``/``states`` are masked where the world is unknown, and every target is masked
on look-away frames (nothing of the table is in view).

Batches (``draw_batch_near``) take part of each video's frames from around step ends (from
``near_before`` s before to ``near_after`` s after one): the frames just before, at and a few
seconds after a completion are the hard cases for ``completed``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from proassist_ros.train.vision_data import FrameSet, _bags_key

FACTS_VERSION = 1
TARGETS = ("completed", "step", "hand", "states")
DEFAULT_WEIGHTS = {"completed": 10.0, "step": 1.0, "hand": 1.0, "states": 1.0}
SIGLIP_WEIGHT = "siglip"  # fact_weights may also scale the caption loss (siglip=0: facts only)
AWAY = "The camera is turned away"  # the caption during a look-away (world/captions.py)


@dataclass
class FrameFacts:
    """Per cached frame: the four targets ("" / None / -1 where unknown) and closeness to a step end."""

    completed: np.ndarray  # (N,) 1.0 / 0.0, -1 unknown
    near: np.ndarray  # (N,) bool: within [t_end − near_before, t_end + near_after] of some step end
    step: list[str]
    hand: list[str]
    states: list[dict[str, str] | None]

    def __len__(self) -> int:
        return len(self.step)

    def subset(self, idx: np.ndarray) -> FrameFacts:
        return FrameFacts(self.completed[idx], self.near[idx], [self.step[i] for i in idx],
                          [self.hand[i] for i in idx], [self.states[i] for i in idx])

    def to_dict(self) -> dict:
        return {"completed": self.completed.tolist(), "near": self.near.astype(int).tolist(), "step": self.step,
                "hand": self.hand, "states": self.states}

    @classmethod
    def from_dict(cls, d: dict) -> FrameFacts:
        return cls(np.array(d["completed"], dtype=np.float32), np.array(d["near"], dtype=bool), d["step"],
                   d["hand"], d["states"])


def facts_of_video(steps: list[dict], task: str, world, times: Sequence[float], captions: Sequence[str], *,
                   window_s: float = 1.0, near_before: float = 2.0, near_after: float = 3.0) -> FrameFacts:
    """The targets of one video's frames at ``times`` (its captions tell look-aways)."""
    from proassist_ros.train.probe import completed, hand_label, object_states, step_label

    ends = np.array([float(s["t_end"]) for s in steps]) if steps else np.zeros(0)
    comp, near, step, hand, states = [], [], [], [], []
    for t, cap in zip(times, captions):
        t = float(t)
        away = cap.startswith(AWAY)
        known = bool(steps) and not away
        comp.append(float(completed(steps, t, window_s)) if known else -1.0)
        near.append(bool(len(ends)) and bool(np.any((ends - near_before <= t) & (t <= ends + near_after))))
        step.append(step_label(steps, task, t) if known else "")
        seen = world is not None and not away
        hand.append(hand_label(world, t) if seen else "")
        states.append(object_states(world, t) if seen else None)
    return FrameFacts(np.array(comp, np.float32), np.array(near, bool), step, hand, states)


def frame_facts(bags_or_dirs, data: FrameSet, cache_dir: Path, *, window_s: float = 1.0, near_before: float = 2.0,
                near_after: float = 3.0, progress: bool = True) -> FrameFacts:
    """The targets of every frame of ``data`` (the frames ``cache_frames`` made of the same bags),
    cached in ``cache_dir/facts_KEY.json`` (the key covers the bags, the frames and the settings)."""
    from tqdm import tqdm

    from proassist_ros.data.dataset import iter_dataset
    from proassist_ros.data.dataset_read import read_episode_base
    from proassist_ros.train.probe import _world_of

    bags = list(iter_dataset(bags_or_dirs))
    h = hashlib.sha256(json.dumps([FACTS_VERSION, window_s, near_before, near_after, _bags_key(bags, 0, 0.0),
                                   data.videos, np.round(data.t, 4).tolist()]).encode())
    path = cache_dir / f"facts_{h.hexdigest()[:16]}.json"
    if path.is_file():
        return FrameFacts.from_dict(json.loads(path.read_text()))
    rows = {v: np.flatnonzero(np.asarray(data.videos) == v) for v in dict.fromkeys(data.videos)}
    parts: dict[str, FrameFacts] = {}
    for bag in tqdm(bags, desc="frame facts", unit="bag", disable=not progress):
        ep, _ = read_episode_base(bag)
        vid = ep.meta.video_id
        if vid not in rows or vid in parts:
            continue
        steps = list(ep.meta.extra.get("steps", []))
        task = ep.meta.task_type or (ep.task.task_type if ep.task else "")
        idx = rows[vid]
        parts[vid] = facts_of_video(steps, task, _world_of(ep.meta, steps) if steps else None, data.t[idx],
                                    [data.captions[i] for i in idx], window_s=window_s, near_before=near_before,
                                    near_after=near_after)
    missing = sorted(set(rows) - set(parts))
    if missing:
        raise ValueError(f"no bag for the cached video(s) {missing[:5]}")
    n = len(data)
    out = FrameFacts(np.full(n, -1.0, np.float32), np.zeros(n, bool), [""] * n, [""] * n, [None] * n)
    for vid, f in parts.items():
        for j, i in enumerate(rows[vid]):
            out.completed[i], out.near[i] = f.completed[j], f.near[j]
            out.step[i], out.hand[i], out.states[i] = f.step[j], f.hand[j], f.states[j]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(out.to_dict()))
    os.replace(tmp, path)
    return out


# ---- label vocabularies and batches -------------------------------------------------------------
@dataclass
class FactVocab:
    """Classes of the training frames: steps, hand phases, "task/object=state" tokens."""

    steps: list[str]
    hands: list[str]
    states: list[str]  # "task/object=state"

    @classmethod
    def build(cls, facts: FrameFacts) -> FactVocab:
        return cls(sorted({s for s in facts.step if s}), sorted({h for h in facts.hand if h}),
                   sorted({f"{o}={v}" for st in facts.states if st for o, v in st.items()}))

    def to_dict(self) -> dict:
        return {"steps": self.steps, "hands": self.hands, "states": self.states}

    @classmethod
    def from_dict(cls, d: dict) -> FactVocab:
        return cls(list(d["steps"]), list(d["hands"]), list(d["states"]))

    def __post_init__(self) -> None:
        self._step = {s: i for i, s in enumerate(self.steps)}
        self._hand = {s: i for i, s in enumerate(self.hands)}
        self._state = {s: i for i, s in enumerate(self.states)}
        self._object: dict[str, list[int]] = {}
        for i, tok in enumerate(self.states):
            self._object.setdefault(tok.split("=", 1)[0], []).append(i)

    def targets(self, facts: FrameFacts, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """Batch tensors: ``completed`` (B,) with ``completed_mask``; ``step``/``hand`` class ids
        (−100: unknown or unseen in training); ``states`` (B, T) 0/1 with ``states_mask`` — for each
        object the frame shows, all tokens of that object (its state positive, its other states negative)."""
        b = len(idx)
        comp = torch.tensor([float(facts.completed[i]) for i in idx])
        width = max(1, len(self.states))  # as the head: one dead column when there are no states
        states, mask = torch.zeros(b, width), torch.zeros(b, width)
        for r, i in enumerate(idx):
            for obj, val in (facts.states[i] or {}).items():
                cols = self._object.get(obj)
                if cols is None:
                    continue
                mask[r, cols] = 1.0
                k = self._state.get(f"{obj}={val}")
                if k is not None:
                    states[r, k] = 1.0
        return {"completed": comp.clamp_min(0.0), "completed_mask": (comp >= 0).float(),
                "step": torch.tensor([self._step.get(facts.step[i], -100) for i in idx]),
                "hand": torch.tensor([self._hand.get(facts.hand[i], -100) for i in idx]),
                "states": states, "states_mask": mask}


def draw_batch_near(rng: np.random.Generator, groups: Sequence[np.ndarray], near: Sequence[np.ndarray], batch: int,
                    per_video: int, near_frac: float) -> np.ndarray:
    """Like ``vision.draw_batch`` (``per_video`` frames of each of ``batch / per_video`` videos), with
    ``round(per_video · near_frac)`` of each video's frames drawn from ``near[g]`` (frames around
    its step ends) when it has that many, the rest from all its frames."""
    out: list[int] = []
    for g in rng.permutation(len(groups)):
        take = min(per_video, len(groups[g]), batch - len(out))
        k = min(int(round(take * near_frac)), len(near[g]))
        first = rng.choice(near[g], k, replace=False) if k else np.zeros(0, dtype=np.int64)
        rest = np.setdiff1d(groups[g], first)
        out.extend(int(i) for i in first)
        out.extend(int(i) for i in rng.choice(rest, take - k, replace=False))
        if len(out) == batch:
            break
    return np.sort(np.array(out))


# ---- heads --------------------------------------------------------------------------------------
class FactHeads(nn.Module):
    """Linear heads on the frame token: what is linear here is what a linear probe (and the
    projector's first layer) can read."""

    def __init__(self, dim: int, vocab: FactVocab) -> None:
        super().__init__()
        self.completed = nn.Linear(dim, 1)
        self.step = nn.Linear(dim, max(1, len(vocab.steps)))
        self.hand = nn.Linear(dim, max(1, len(vocab.hands)))
        self.states = nn.Linear(dim, max(1, len(vocab.states)))

    def forward(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"completed": self.completed(emb)[:, 0], "step": self.step(emb), "hand": self.hand(emb),
                "states": self.states(emb)}


def fact_losses(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per target, summed over the batch's frames and divided by the batch size (as SigLIP's loss is
    per image): BCE for ``completed`` and ``states`` (masked), cross-entropy for ``step``/``hand``."""
    b = out["completed"].shape[0]
    zero = out["completed"].sum() * 0.0
    comp = F.binary_cross_entropy_with_logits(out["completed"], tgt["completed"], reduction="none")
    st = F.binary_cross_entropy_with_logits(out["states"], tgt["states"], reduction="none")
    res = {"completed": (comp * tgt["completed_mask"]).sum() / b, "states": (st * tgt["states_mask"]).sum() / b}
    for k in ("step", "hand"):
        res[k] = F.cross_entropy(out[k], tgt[k], ignore_index=-100, reduction="sum") / b if (
            tgt[k] >= 0).any() else zero
    return res


def parse_weights(text: str | dict | None) -> dict[str, float]:
    """"completed=5,step=1" (or a dict) → every target's weight (unnamed ones: the defaults)."""
    if text is None:
        return dict(DEFAULT_WEIGHTS)
    items = text.items() if isinstance(text, dict) else (p.split("=", 1) for p in text.split(",") if p.strip())
    out = dict(DEFAULT_WEIGHTS)
    for k, v in items:
        k = k.strip()
        if k not in (*TARGETS, SIGLIP_WEIGHT):
            raise ValueError(f"unknown fact target {k!r} (one of {', '.join(TARGETS)})")
        out[k] = float(v)
    return out


@torch.no_grad()
def evaluate_heads(heads: FactHeads, vocab: FactVocab, feats: torch.Tensor, facts: FrameFacts) -> dict:
    """The heads themselves on held-out frames: completion AUC, step / hand accuracy, state accuracy."""
    from proassist_ros.train.probe import roc_auc

    out = heads(feats)
    tgt = vocab.targets(facts, range(len(facts)))
    res: dict = {"frames": len(facts)}
    m = tgt["completed_mask"] > 0
    lab = tgt["completed"][m].numpy() > 0.5
    if lab.any() and (~lab).any():
        res["completed_auc"] = round(roc_auc(lab, out["completed"][m].numpy()), 4)
        res["completed_positives"] = int(lab.sum())
    for k in ("step", "hand"):
        ok = tgt[k] >= 0
        if ok.any():
            res[f"{k}_accuracy"] = round(float((out[k].argmax(1)[ok] == tgt[k][ok]).float().mean()), 4)
    sm = tgt["states_mask"] > 0
    if sm.any():
        pred = (out["states"] > 0).float()
        res["state_token_accuracy"] = round(float((pred[sm] == tgt["states"][sm]).float().mean()), 4)
    return res
