"""Linear probes on frozen frame features: what a vision tower tells the LLM about the task.

The shipped model hears questions well but mostly misses the moment a step visibly finishes
(docs/model_card.md), and stage 1's own checks (neighbour agreement, train/vision_eval.py) say
only indirectly whether that information is in the features at all. A linear probe asks it
directly, in seconds instead of the hours a stage-2 run costs: fit a logistic regression on the
features of some videos, score it on other videos, for three facts the task world knows per frame:

(a) ``step``: which step is in progress ("make_tea:2"; "none" between steps), multi-class;
(b) ``completion``: did a step complete within the last ``window_s`` (1 s) — the cue the
    assistant must speak on; ROC AUC is the headline number (the target for towers: ≥ 0.9);
    ``completion_pair`` gives the probe the frame of ``window_s`` earlier too ([f_t, f_t − f_t−1s]),
    closer to what the LLM, which sees the frame sequence, can use;
(c) ``states``: each object's state ("fill=water,open=False,...", per task type and object), one
    multi-class probe per object, mean accuracy and balanced accuracy over objects.

Features are taken per tower two ways: ``tower`` — the tower's output before the projector
(``encode_frames``: the MAP-pooled token at I = 1, the I tokens flattened otherwise), comparable
across towers; ``projected`` — after the projector (``embed_frames``), what the LLM is given; the
projector is the trained one only for a trained model (the shipped one), a seeded random one else.
A reference row, ``captions``, probes each frame's caption as word counts instead of pixels: the
level a tower that captured what its stage-1 captions say could reach with the same probes and data.

Splits are by video, stratified by task type (fold = the video's rank among its task type's videos
mod ``folds``), so no video is in both the train and the held-out part; features are standardised on
the train part; metrics are the mean over folds of the held-out numbers, each with its chance level
(the train part's majority class; 1 / classes for balanced accuracy; 0.5 for AUC). The probes'
L2 weight (1e-2) was looked at on the default data only for sensitivity: 1e-3 … 1e-1 moved the
towers' numbers by a few hundredths; ≥ 1 collapses every probe to the majority class.

Data: by default rendered in memory from the task world (``data/world``: ``make_episode`` for the
frames and captions, ``make_world`` for the per-frame facts) — the validation split, a fixed seed,
frames JPEG-compressed as the training bags were — so no bags are needed. ``--data`` takes dataset
bags instead: steps come from their facts, object states from rebuilding the world the bag was
generated from (when its generator and video id say which).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see vision_cli: spin-waiting costs 3-9x on 2 cores

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

FORMAT = "proassist_ros.probe/1"
AWAY = "The camera is turned away"  # captions.caption() during a look-away
CAPTION_SLACK_S = 1e-3
KINDS = ("tower", "projected")
METRICS = ("step", "completion", "completion_pair", "states")
DEFAULT_TOWERS = ("random", "shipped", "captions")
VIDEO_ID = re.compile(r"^world(\d+)_(train|val|test)_(\d+)(_long)?$")


# ---- towers -------------------------------------------------------------------------------------
@dataclass
class Tower:
    """A frozen vision tower + projector and how frames reach it (image size, I)."""

    name: str
    spec: str
    vision: torch.nn.Module
    projector: torch.nn.Module
    image_size: int
    patch_grid: int
    projector_trained: bool
    source: str

    kinds = KINDS

    @property
    def tokens_per_frame(self) -> int:
        return 1 + self.patch_grid**2

    def features(self, video: Video, pixels: dict[int, torch.Tensor]) -> dict[str, np.ndarray]:
        """This video's features; ``pixels`` caches the preprocessed frames per image size."""
        if self.image_size not in pixels:
            pixels[self.image_size] = _pixels(video.frames, self.image_size)
        return encode(self, pixels[self.image_size])

    def info(self) -> dict:
        return {"spec": self.spec, "source": self.source, "image_size": self.image_size,
                "tokens_per_frame": self.tokens_per_frame,
                "projector": "trained" if self.projector_trained else "random"}


@dataclass
class CaptionWords:
    """A reference, not a tower: each frame's caption (the world's own description of what it
    shows: objects, states, the hands' action) as hashed word counts: roughly what a tower that
    captured everything its stage-1 captions say would give the probes, a reference level."""

    name: str = "captions"
    spec: str = "captions"
    dims: int = 512
    kinds = ("words",)

    def features(self, video: Video, pixels: dict[int, torch.Tensor]) -> dict[str, np.ndarray]:
        from proassist_ros.train.vision_data import words

        x = np.zeros((len(video.t), self.dims), np.float32)
        for row, t in enumerate(video.t):
            text = caption_at(video.captions, float(t))
            for w in words(text or ""):
                x[row, zlib.crc32(w.encode()) % self.dims] += 1.0
        return {"words": x}

    def info(self) -> dict:
        return {"spec": self.spec, "source": f"reference: the frame's caption as word counts hashed to {self.dims} "
                                              "dims (no pixels)"}


@dataclass
class HandPhase:
    """A reference, not a tower: the hand's action and phase as the renderer draws it ("step:act",
    "idle:rest", "return:back", …; ``hand_label``), one-hot (hashed to ``dims``).

    Why: (b) asks whether a step ended within the last second, and right after a step ends the
    hands rest exactly as they do in any pause, so no single frame can tell all of it; this row
    gives that ceiling for one frame, and with the frame a second earlier (act → rest) the level a
    tower that sees only what the hand does could reach. Needs the world (``world_videos``, or bags
    whose generator and video id say which world)."""

    name: str = "hand"
    spec: str = "hand"
    dims: int = 64
    kinds = ("phase",)

    def features(self, video: Video, pixels: dict[int, torch.Tensor]) -> dict[str, np.ndarray]:
        if video.world is None:
            raise ValueError(f"{video.video_id}: the 'hand' reference needs the task world behind the video "
                             "(rendered videos, or bags of this generator)")
        x = np.zeros((len(video.t), self.dims), np.float32)
        for row, t in enumerate(video.t):
            x[row, zlib.crc32(hand_label(video.world, float(t)).encode()) % self.dims] = 1.0
        return {"phase": x}

    def info(self) -> dict:
        return {"spec": self.spec, "source": f"reference: the hand's action:phase from the world, one-hot hashed to "
                                              f"{self.dims} dims (no pixels)"}


def _from_model(model, name: str, spec: str) -> Tower:
    c = model.config
    return Tower(name, spec, model.vision.float().eval(), model.mm_projector.float().eval(), c.image_size,
                 c.patch_grid, not c.untrained, c.source)


def _random_projector(d_in: int, d_out: int, seed: int) -> torch.nn.Module:
    from proassist_ros.model.projector import build_projector

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_projector(d_in, d_out).eval()


def _projector_dims(tower: Tower) -> tuple[int, int]:
    return int(tower.projector[0].in_features), int(tower.projector[-1].out_features)


def _stage1_tower(path: Path, spec: str, patch_grid: int = 0) -> Tower:
    """A stage-1 output directory (train/vision.py): its tower; a random projector to SmolLM2's width.
    ``patch_grid`` 2 / 3 probes I = 5 / 10 tokens per frame (the MAP token + the pooled patch grid)."""
    from proassist_ros.model.safetensors_io import load_safetensors
    from proassist_ros.model.tower import TOWER_FILE, read_tower_config
    from proassist_ros.model.vision import build_vision_tower

    cfg = read_tower_config(path)
    vision = build_vision_tower(cfg["siglip_vision_config"])
    vision.load_state_dict(load_safetensors(path / TOWER_FILE), strict=True)
    name = path.name if not patch_grid else f"{path.name}_I{1 + patch_grid**2}"
    return Tower(name, spec, vision.float().eval(), _random_projector(cfg["hidden"], 576, 0),
                 cfg["image_size"], patch_grid, False, f"stage-1 tower {path} + random projector")


def _random_like(ref: Tower | None, seed: int, spec: str) -> Tower:
    """A random tower of ``ref``'s architecture (default: the shipped tower's), random projector."""
    from proassist_ros.model.embedded import WEIGHTS_DIR
    from proassist_ros.model.tower import read_tower_config
    from proassist_ros.model.vision import build_vision_tower

    if ref is None:
        vcfg, size, grid, dims = read_tower_config(WEIGHTS_DIR)["siglip_vision_config"], None, 0, None
    else:
        vcfg, size, grid, dims = ref.vision.config.to_dict(), ref.image_size, ref.patch_grid, _projector_dims(ref)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vision = build_vision_tower(vcfg).float().eval()
    d_in = int(vision.config.hidden_size)
    proj = _random_projector(d_in, dims[1] if dims else 576, seed + 1)
    what = f"random tower (seed {seed}) shaped as {ref.name if ref else 'the shipped tower'} + random projector"
    return Tower(f"random{'' if seed == 0 else f'_{seed}'}", spec, vision, proj,
                 size or int(vision.config.image_size), grid, False, what)


def load_tower(spec: str, reference: Tower | None = None, patch_grid: int = 0) -> Tower | CaptionWords | HandPhase:
    """``shipped`` (``load("embedded")``), ``tiny``, ``random[:SEED]`` (like ``reference``), a model
    checkpoint directory, a stage-1 tower directory, or ``captions`` / ``hand`` (the references)."""
    from proassist_ros.model import load

    if spec == "captions":
        return CaptionWords()
    if spec == "hand":
        return HandPhase()
    if spec.split(":")[0] == "random":
        seed = int(spec.split(":")[1]) if ":" in spec else 0
        return _random_like(reference, seed, spec)
    if spec in ("shipped", "embedded", "tiny"):
        model = load("embedded" if spec != "tiny" else "tiny")
        return _from_model(model, "shipped" if spec == "embedded" else spec, spec)
    path = Path(spec).expanduser()
    if (path / "tower.safetensors").is_file() and not (path / "proassist_config.json").is_file():
        return _stage1_tower(path, spec, patch_grid)
    return _from_model(load(path), path.name, spec)


def load_towers(specs: Sequence[str], patch_grid: int = 0) -> list[Tower | CaptionWords | HandPhase]:
    """All towers; ``random`` is shaped as the first other tower listed; ``patch_grid`` applies to
    stage-1 tower directories (a model directory says its own I)."""
    loaded = {s: load_tower(s, patch_grid=patch_grid) for s in specs if s.split(":")[0] != "random"}
    ref = next((t for t in loaded.values() if isinstance(t, Tower)), None)
    return [loaded[s] if s in loaded else load_tower(s, ref) for s in specs]


def _pixels(frames: list[np.ndarray], size: int) -> torch.Tensor:
    """``preprocess`` on one intra-op thread (many small per-frame ops: 2 threads spin-wait, vision_data)."""
    from proassist_ros.model.vision import preprocess

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return preprocess(frames, size)
    finally:
        torch.set_num_threads(threads)


@torch.inference_mode()
def encode(tower: Tower, pixels: torch.Tensor, batch: int = 64) -> dict[str, np.ndarray]:
    """(N,3,S,S) pixels → {"tower": (N, I·D_vision), "projected": (N, I·D_llm)}, as ``embed_frames``."""
    from proassist_ros.model.vision import encode_pixels

    feats = torch.cat([encode_pixels(tower.vision, pixels[i : i + batch], tower.patch_grid)
                       for i in range(0, len(pixels), batch)])
    return {"tower": feats.flatten(1).numpy(), "projected": tower.projector(feats).flatten(1).numpy()}


# ---- videos and their facts ---------------------------------------------------------------------
@dataclass
class Video:
    """One video's sampled frames with what the world knows about them."""

    video_id: str
    task: str
    t: np.ndarray
    frames: list[np.ndarray]
    steps: list[dict]
    captions: list  # Caption (t, text), time-sorted
    world: object | None = None  # data.world.build.World: per-frame object states


def world_indices(seed: int, split: str, videos: int, types: Sequence[str] = ()) -> list[int]:
    """The first ``videos`` indices of the split (whose task type is in ``types``, if given)."""
    from proassist_ros.data.world.splits import task_type_for
    from proassist_ros.data.world.tasks import TASK_TYPES

    bad = sorted(set(types) - set(TASK_TYPES))
    if bad:
        raise ValueError(f"unknown task type(s) {bad}; known: {', '.join(TASK_TYPES)}")
    out: list[int] = []
    for index in range(videos * 200):
        if not types or task_type_for(seed, split, index) in types:
            out.append(index)
            if len(out) == videos:
                return out
    raise ValueError(f"the {split} split holds none of the task types {list(types)}")


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    from proassist_ros.data.dataset import decode_jpeg, encode_jpeg

    return decode_jpeg(encode_jpeg(rgb, quality)) if quality > 0 else rgb


def world_videos(seed: int, split: str, indices: Iterable[int], *, fps: float, size: tuple[int, int],
                 jpeg_quality: int = 70) -> Iterator[Video]:
    """Videos rendered in memory at ``fps`` (the node's grid: every 1/fps s from t = 0)."""
    from proassist_ros.data.world import make_episode, make_world

    for index in indices:
        ep = make_episode(seed, split, index, size=size, hz=fps)
        world = make_world(seed, split, index)
        t, frames = zip(*((t, _jpeg(rgb, jpeg_quality)) for t, rgb in ep.frames()), strict=True)
        yield Video(ep.meta.video_id, ep.meta.task_type, np.array(t), list(frames), ep.meta.extra["steps"],
                    sorted(ep.captions, key=lambda c: c.t), world)


def _world_of(meta, steps: list[dict]):
    """The generator's world behind a bag, when its facts say which one and it agrees on the steps."""
    from proassist_ros.data.world import GENERATOR_VERSION, make_world

    m = VIDEO_ID.match(meta.video_id)
    if meta.generator != GENERATOR_VERSION or m is None:
        return None
    world = make_world(int(m[1]), m[2], int(m[3]), bool(m[4]))
    same = len(world.timeline.steps) == len(steps) and all(
        abs(a["t_end"] - float(b["t_end"])) < 1e-3 for a, b in zip(world.timeline.steps, steps))
    return world if same else None


def bag_videos(data: Sequence[str | Path], *, fps: float) -> Iterator[Video]:
    """Dataset bags: the frames ``sampled_frames`` keeps; steps from the bag's facts."""
    from proassist_ros.data.dataset import iter_dataset
    from proassist_ros.data.dataset_read import read_episode_base
    from proassist_ros.runtime.sampling import sampled_frames

    for bag in iter_dataset(data):
        ep, t0 = read_episode_base(bag)
        steps = list(ep.meta.extra.get("steps", []))
        if not steps:
            raise ValueError(f"{bag}: its facts carry no steps (meta.extra['steps']); the probe needs them")
        kept = list(sampled_frames(ep, fps, t0))
        task = ep.meta.task_type or (ep.task.task_type if ep.task else "")
        yield Video(ep.meta.video_id, task, np.array([t for t, _ in kept]), [f for _, f in kept], steps,
                    sorted(ep.captions, key=lambda c: c.t), _world_of(ep.meta, steps))


def caption_at(captions: Sequence, t: float) -> str | None:
    """The latest caption at or before t (captions are logged at frame times)."""
    k = bisect.bisect_right(captions, t + CAPTION_SLACK_S, key=lambda c: c.t) - 1
    return captions[k].text if k >= 0 else None


def step_label(steps: list[dict], task: str, t: float) -> str:
    """"task:step" of the step in progress at t (t_start ≤ t < t_end), else "none"."""
    for s in steps:
        if float(s["t_start"]) <= t < float(s["t_end"]):
            return f"{task}:{s['step']}"
    return "none"


def completed(steps: list[dict], t: float, window_s: float) -> bool:
    """A step visibly completed (its effects show from t_end on) within (t − window_s, t]."""
    return any(t - window_s < float(s["t_end"]) <= t for s in steps)


def object_states(world, t: float) -> dict[str, str]:
    """{"task/object": "attr=value,..."}: what the renderer draws at t (positions left out)."""
    from proassist_ros.data.world.motion import scene_at

    state = scene_at(world.timeline, t).state
    return {f"{world.task.type}/{o}": ",".join(f"{k}={v}" for k, v in sorted(s.items()) if k not in ("pos", "off", "z"))
            for o, s in state.items()}


def hand_label(world, t: float) -> str:
    """The hand's action kind and phase at t ("return:reach"), as the renderer draws it."""
    from proassist_ros.data.world.motion import scene_at

    sc = scene_at(world.timeline, t)
    return f"{sc.action.kind}:{sc.phase}"


@dataclass
class Facts:
    """Per sampled frame: video, task type, time, the three probe targets, and look-aways."""

    videos: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    step: list[str] = field(default_factory=list)
    completed: list[bool] = field(default_factory=list)
    states: list[dict[str, str] | None] = field(default_factory=list)
    away: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.t)

    def add(self, v: Video, window_s: float) -> None:
        for t in v.t:
            self.videos.append(v.video_id)
            self.tasks.append(v.task)
            self.t.append(float(t))
            self.step.append(step_label(v.steps, v.task, float(t)))
            self.completed.append(completed(v.steps, float(t), window_s))
            self.states.append(object_states(v.world, float(t)) if v.world is not None else None)
            self.away.append((caption_at(v.captions, float(t)) or "").startswith(AWAY))

    def previous(self, window_s: float) -> np.ndarray:
        """Index of each frame's frame ``window_s`` earlier in its video (its first frame at the start)."""
        vids, t = np.asarray(self.videos), np.asarray(self.t)
        out = np.arange(len(t))
        for v in dict.fromkeys(self.videos):
            idx = np.flatnonzero(vids == v)
            j = np.searchsorted(t[idx], t[idx] - window_s + CAPTION_SLACK_S, side="right") - 1
            out[idx] = idx[np.clip(j, 0, None)]
        return out


def video_folds(videos: Sequence[str], tasks: Sequence[str], k: int) -> dict[str, int]:
    """Fold of each video: its rank among the videos of its task type, mod k (so each task type is
    on both sides of a split when it has ≥ 2 videos); by plain rank when that leaves a fold empty."""
    order = list(dict.fromkeys(zip(videos, tasks)))
    if len(order) < k:
        raise ValueError(f"{len(order)} video(s) cannot be split into {k} folds; use more --videos")
    seen: dict[str, int] = {}
    folds = {}
    for v, task in order:
        folds[v] = seen.get(task, 0) % k
        seen[task] = seen.get(task, 0) + 1
    if len(set(folds.values())) < k:
        folds = {v: i % k for i, (v, _) in enumerate(order)}
    return folds


# ---- probes -------------------------------------------------------------------------------------
@dataclass
class LinearProbe:
    """Multinomial logistic regression on standardised features."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    classes: list

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = (torch.as_tensor(x, dtype=torch.float32) - self.mean) / self.std
        return torch.softmax(z @ self.weight + self.bias, dim=-1).numpy()

    def predict(self, x: np.ndarray) -> list:
        return [self.classes[i] for i in self.proba(x).argmax(1)]


def fit_probe(x: np.ndarray, y: Sequence, *, l2: float = 1e-2, steps: int = 200) -> LinearProbe:
    """Full-batch L-BFGS on mean cross-entropy + l2·‖W‖², features standardised on ``x``."""
    classes = sorted(set(y), key=str)
    index = {c: i for i, c in enumerate(classes)}
    xt = torch.as_tensor(x, dtype=torch.float32)
    mean, std = xt.mean(0), xt.std(0).clamp_min(1e-6)
    z = (xt - mean) / std
    target = torch.tensor([index[v] for v in y])
    w = torch.zeros(z.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, target) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, std, w.detach(), b.detach(), classes)


def accuracy(y: Sequence, pred: Sequence) -> float:
    return float(np.mean([a == b for a, b in zip(y, pred)]))


def balanced_accuracy(y: Sequence, pred: Sequence) -> float:
    """Mean over the classes present in ``y`` of their recall."""
    ya, pa = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    return float(np.mean([np.mean(pa[ya == c] == c) for c in set(y)]))


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """P(score of a positive > score of a negative), ties half (Mann-Whitney with average ranks)."""
    from scipy.stats import rankdata

    lab = np.asarray(labels, bool)
    n_pos, n_neg = int(lab.sum()), int((~lab).sum())
    if not n_pos or not n_neg:
        raise ValueError("AUC needs positives and negatives")
    ranks = rankdata(np.asarray(scores, float))
    return float((ranks[lab].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float:
    lab = np.asarray(labels, bool)[np.argsort(-np.asarray(scores, float), kind="stable")]
    hits = np.cumsum(lab)
    return float(np.sum(hits[lab] / (np.flatnonzero(lab) + 1)) / max(1, lab.sum()))


def _majority(y: Sequence) -> object:
    values, counts = np.unique(np.asarray(y, dtype=str), return_counts=True)
    return values[int(np.argmax(counts))]


def classify(x: np.ndarray, y: Sequence, train: np.ndarray, test: np.ndarray, **fit) -> dict | None:
    """One multi-class probe: held-out accuracy / balanced accuracy and their chance levels."""
    ytr, yte = [y[i] for i in train], [y[i] for i in test]
    if len(set(ytr)) < 2 or not yte:
        return None
    pred = fit_probe(x[train], ytr, **fit).predict(x[test])
    major = _majority(ytr)
    return {"accuracy": accuracy(yte, pred), "balanced_accuracy": balanced_accuracy(yte, pred),
            "chance_accuracy": accuracy(yte, [major] * len(yte)), "chance_balanced_accuracy": 1 / len(set(yte)),
            "classes": len(set(ytr) | set(yte)), "train": len(ytr), "test": len(yte)}


def detect(x: np.ndarray, y: Sequence[bool], train: np.ndarray, test: np.ndarray, **fit) -> dict | None:
    """One binary probe: held-out ROC AUC and average precision (chance: 0.5, the positive rate)."""
    ytr, yte = np.asarray(y, bool)[train], np.asarray(y, bool)[test]
    if ytr.all() or not ytr.any() or yte.all() or not yte.any():
        return None
    probe = fit_probe(x[train], ytr.tolist(), **fit)
    score = probe.proba(x[test])[:, probe.classes.index(True)]
    return {"auc": roc_auc(yte, score), "average_precision": average_precision(yte, score), "chance_auc": 0.5,
            "chance_average_precision": float(yte.mean()), "positives": int(yte.sum()), "train": int(len(ytr)),
            "test": int(len(yte))}


def object_probes(x: np.ndarray, facts: Facts, train: np.ndarray, test: np.ndarray, **fit) -> dict[str, dict]:
    """(c): one probe per "task/object" whose state changes in the train part (look-aways left out)."""
    keep = [i for i in range(len(facts)) if facts.states[i] is not None and not facts.away[i]]
    tr_set, te_set = set(train.tolist()), set(test.tolist())
    keys = sorted({k for i in keep for k in facts.states[i]})
    out = {}
    for key in keys:
        rows = [i for i in keep if key in facts.states[i]]
        y = {i: facts.states[i][key] for i in rows}
        tr = np.array([i for i in rows if i in tr_set], dtype=int)
        te = np.array([i for i in rows if i in te_set], dtype=int)
        labels = [y.get(i, "") for i in range(len(facts))]
        r = classify(x, labels, tr, te, **fit) if len(tr) and len(te) else None
        if r is not None:
            out[key] = r
    return out


def _mean(rows: list[dict]) -> dict | None:
    """Field-wise mean of per-fold (or per-object) results; counts are summed."""
    if not rows:
        return None
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        out[k] = int(sum(vals)) if k in ("train", "test", "positives") else round(float(np.mean(vals)), 4)
    return out


def run_probes(feats: np.ndarray, facts: Facts, folds: dict[str, int], *, window_s: float = 1.0,
               l2: float = 1e-2, steps: int = 200) -> dict:
    """(a), (b), (b pair) and (c) for one feature matrix: held-out means over the video folds."""
    fit = {"l2": l2, "steps": steps}
    fold = np.array([folds[v] for v in facts.videos])
    prev = facts.previous(window_s)
    pair = np.concatenate([feats, feats - feats[prev]], axis=1)
    per: dict[str, list] = {m: [] for m in METRICS}
    per_object: dict[str, list[dict]] = {}
    for f in sorted(set(folds.values())):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        per["step"].append(classify(feats, facts.step, train, test, **fit))
        per["completion"].append(detect(feats, facts.completed, train, test, **fit))
        per["completion_pair"].append(detect(pair, facts.completed, train, test, **fit))
        objects = object_probes(feats, facts, train, test, **fit)
        per["states"].append(_mean(list(objects.values())) if objects else None)
        for key, r in objects.items():
            per_object.setdefault(key, []).append(r)
    out: dict = {m: _mean([r for r in per[m] if r is not None]) for m in METRICS}
    if out["states"] is not None:
        out["states"]["objects"] = len(per_object)
    out["per_object"] = {k: {m: v for m, v in _mean(rs).items() if m in ("accuracy", "balanced_accuracy",
                                                                           "chance_accuracy", "test")}
                         for k, rs in sorted(per_object.items())}
    return out


# ---- the whole run ------------------------------------------------------------------------------
def collect(towers: Sequence[Tower | CaptionWords | HandPhase], videos: Iterable[Video], *, window_s: float,
            total: int | None = None, progress: bool = True) -> tuple[Facts, dict[str, dict[str, np.ndarray]]]:
    """Facts and per-tower features of every sampled frame (frames are dropped video by video)."""
    from tqdm import tqdm

    facts = Facts()
    chunks: dict[str, dict[str, list]] = {tw.name: {k: [] for k in tw.kinds} for tw in towers}
    bar = tqdm(videos, total=total, unit="video", desc="frames + features", disable=not progress)
    for v in bar:
        facts.add(v, window_s)
        pixels: dict[int, torch.Tensor] = {}
        for tw in towers:
            for kind, x in tw.features(v, pixels).items():
                chunks[tw.name][kind].append(x)
        bar.set_postfix(frames=len(facts))
    if not len(facts):
        raise ValueError("no frames to probe")
    return facts, {n: {k: np.concatenate(xs) for k, xs in c.items()} for n, c in chunks.items()}


def probe(towers: Sequence[Tower | CaptionWords | HandPhase], videos: Iterable[Video], *, data: dict, folds: int = 2,
          window_s: float = 1.0, l2: float = 1e-2, steps: int = 200, total: int | None = None,
          progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Everything ``probe.json`` holds: the data, the split, and per tower and feature kind the metrics."""
    t0 = time.perf_counter()
    facts, feats = collect(towers, videos, window_s=window_s, total=total, progress=progress)
    t1 = time.perf_counter()
    fold_of = video_folds(facts.videos, facts.tasks, folds)
    result = {"format": FORMAT, "data": {**data, "videos": sorted(fold_of), "frames": len(facts),
                                         "task_types": sorted(set(facts.tasks)),
                                         "completion_frames": int(np.sum(facts.completed)),
                                         "frames_with_states": int(sum(s is not None for s in facts.states)),
                                         "window_s": window_s},
              "split": {"by": "video, stratified by task type", "folds": folds, "fold_of": fold_of,
                        "metrics": "held-out, mean over folds"},
              "probe": {"model": "multinomial logistic regression, torch full-batch L-BFGS",
                        "l2": l2, "max_iter": steps, "standardised": "on the train folds"},
              "towers": {}}
    for tw in towers:
        dims = {k: int(x.shape[1]) for k, x in feats[tw.name].items()}
        result["towers"][tw.name] = {**tw.info(), "dims": dims, "features": {}}
        for kind in tw.kinds:
            log(f"probing {tw.name} / {kind} ({feats[tw.name][kind].shape[1]} dims, {len(facts)} frames)")
            result["towers"][tw.name]["features"][kind] = run_probes(feats[tw.name][kind], facts, fold_of,
                                                                     window_s=window_s, l2=l2, steps=steps)
    result["seconds"] = {"frames_and_features": round(t1 - t0, 1), "probes": round(time.perf_counter() - t1, 1)}
    return result


# ---- output -------------------------------------------------------------------------------------
def _get(result: dict, metric: str, field: str) -> float | None:
    r = result.get(metric)
    return None if r is None else r.get(field)


def _fmt(v: float | None) -> str:
    return "  —  " if v is None else f"{v:.3f}"


COLUMNS = (("(a) step acc", "step", "accuracy", "chance_accuracy"),
           ("(a) step bal", "step", "balanced_accuracy", "chance_balanced_accuracy"),
           ("(b) compl AUC", "completion", "auc", "chance_auc"),
           ("(b) pair AUC", "completion_pair", "auc", "chance_auc"),
           ("(c) state acc", "states", "accuracy", "chance_accuracy"),
           ("(c) state bal", "states", "balanced_accuracy", "chance_balanced_accuracy"))


def table(result: dict) -> str:
    """Towers × feature kinds, each metric with its chance level in parentheses."""
    head = f"{'tower':<14}{'features':<11}" + "".join(f"{c[0]:>17}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for name, tw in result["towers"].items():
        for kind, r in tw["features"].items():
            cells = "".join(f"{_fmt(_get(r, m, f)) + ' (' + _fmt(_get(r, m, ch)) + ')':>17}" for _, m, f, ch in COLUMNS)
            lines.append(f"{name:<14}{kind:<11}{cells}")
    d = result["data"]
    lines.append(f"{d['frames']} frames of {len(d['videos'])} videos ({d['source']}), "
                 f"{result['split']['folds']} video folds; chance in parentheses")
    if "  —  " in "\n".join(lines):
        lines.append("—: no held-out case (e.g. (c) needs a task type on both sides of a split: more --videos)")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Bars of (a) step accuracy, (b) completion AUC, (c) state accuracy per tower and feature kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (COLUMNS[0], COLUMNS[2], COLUMNS[4])
    bars = [(f"{n}\n{k}", r, f"C{i}") for i, (n, tw) in enumerate(result["towers"].items())
            for k, r in tw["features"].items()]
    fig, axes = plt.subplots(1, 3, figsize=(3.2 * 3, 3.4), sharey=True)
    for ax, (title, metric, fld, chance) in zip(axes, panels):
        vals = [_get(r, metric, fld) or 0.0 for _, r, _ in bars]
        ax.bar(range(len(bars)), vals, color=[c for _, _, c in bars])
        for i, (_, r, _) in enumerate(bars):
            c = _get(r, metric, chance)
            if c is not None:
                ax.hlines(c, i - 0.4, i + 0.4, colors="k", linestyles="--", linewidth=1)
        ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("held-out (dashed: chance)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    js = out / "probe.json"
    js.write_text(json.dumps(result, indent=1) + "\n")
    return [js, plot(result, out / "probe.png")]


# ---- command line -------------------------------------------------------------------------------
def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proassist train probe", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("towers", nargs="*", default=list(DEFAULT_TOWERS),
      help="shipped | tiny | random[:SEED] (shaped as the first other tower) | a model or stage-1 tower directory "
           "| captions (a reference: the frame's caption as word counts, no pixels) "
           "| hand (a reference: the hand's action:phase from the world, no pixels)")
    a("--videos", type=int, default=20, help="world videos (the val split has 10 task types: 2 videos each)")
    a("--fps", type=float, default=2.0, help="frames per second probed (the node's 2 FPS)")
    a("--seed", type=int, default=8, help="world seed (8: the model card's validation set)")
    a("--split", default="val", choices=("train", "val", "test"))
    a("--types", default="", help="comma-separated task types (default: all of the split)")
    a("--size", type=_size, default=(320, 240), help="rendered frame size WxH (as the training bags)")
    a("--jpeg-quality", type=int, default=70, help="JPEG round trip of rendered frames, as the bags (0: none)")
    a("--data", nargs="+", metavar="BAG_OR_DIR", help="dataset bags instead of the in-memory world")
    a("--folds", type=int, default=2, help="video folds (train on the others, score on one)")
    a("--window", type=float, default=1.0, help="(b): a step completed within this many seconds")
    a("--l2", type=float, default=1e-2, help="L2 weight of the probes")
    a("--steps", type=int, default=200, help="L-BFGS iterations per probe")
    a("--out", help="directory for probe.json and probe.png")
    a("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a("--tokens-per-frame", type=int, default=1, choices=(1, 5, 10),
      help="I for stage-1 tower directories (and a random tower shaped as one): 5 = MAP token + 2x2 pooled "
           "patches, 10 = + 3x3; features are the I tokens concatenated")
    a("--quiet", action="store_true", help="no progress")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if ns.threads:
        torch.set_num_threads(ns.threads)
    say = (lambda s: None) if ns.quiet else (lambda s: print(s, file=sys.stderr))
    try:
        towers = load_towers(ns.towers or DEFAULT_TOWERS, {1: 0, 5: 2, 10: 3}[ns.tokens_per_frame])
        if ns.data:
            videos, total = bag_videos(ns.data, fps=ns.fps), None
            data = {"source": "bags", "bags": [str(d) for d in ns.data], "fps": ns.fps}
        else:
            types = [t for t in ns.types.split(",") if t]
            indices = world_indices(ns.seed, ns.split, ns.videos, types)
            videos = world_videos(ns.seed, ns.split, indices, fps=ns.fps, size=ns.size, jpeg_quality=ns.jpeg_quality)
            total = len(indices)
            data = {"source": "world", "seed": ns.seed, "split": ns.split, "indices": indices, "fps": ns.fps,
                    "size": list(ns.size), "jpeg_quality": ns.jpeg_quality}
        result = probe(towers, videos, data=data, folds=ns.folds, window_s=ns.window, l2=ns.l2, steps=ns.steps,
                       total=total, progress=not ns.quiet, log=say)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"proassist train probe: error: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    if ns.out:
        for path in write(result, Path(ns.out)):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
