"""Training data: bags → episodes → frame features → samples, and one item per step.

Frame features are the frozen tower's pre-projector output (N, I, D_vision) for the frames the
node keeps (``sampled_frames`` at 2 FPS, anchored at the first frame): from the feature cache of
``features.py`` (checked against the tower's fingerprint, so a retrained tower never meets stale
features) or computed in memory (``--no-feature-cache``). Either way ``TrainSet`` takes a plain
``{video_id: (feats, t)}`` dict, so tests can hand it features directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from proassist_ros.data.dataset import iter_dataset
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.episode import Episode, spoken_references
from proassist_ros.runtime.sampling import sampled_frames

from .nfs import nfs_rng, subsample
from .sequence import Sample, SequenceConfig, build_samples

log = logging.getLogger(__name__)

FPS = 2.0
Features = tuple[torch.Tensor, Sequence[float]]   # (N, I, D_vision), stream times (N,)


@dataclass
class Bag:
    path: Path
    episode: Episode
    t0_ns: int


def read_bags(bags_or_dirs: Iterable[str | Path]) -> list[Bag]:
    """The dataset's bags as episodes; a bag without reference turns is an error naming it."""
    out: list[Bag] = []
    seen: dict[str, Path] = {}
    for path in iter_dataset([Path(p) for p in bags_or_dirs]):
        ep, t0 = read_episode_base(path)
        if not spoken_references(ep):
            raise ValueError(f"{path}: has no /proassist/reference turns; training needs reference "
                             "assistant turns")
        vid = ep.meta.video_id
        if vid in seen:
            raise ValueError(f"{path} and {seen[vid]} have the same video id {vid!r}")
        seen[vid] = path
        out.append(Bag(Path(path), ep, t0))
    return out


@torch.no_grad()
def compute_features(model, episode: Episode, t0_ns: int = 0, batch: int = 64) -> Features:
    """The frozen tower's features of the episode's sampled frames, in memory (float16)."""
    feats, times, chunk = [], [], []

    def flush() -> None:
        feats.append(model.encode_frames(chunk).to(torch.float16).cpu())
        chunk.clear()

    for t, rgb in sampled_frames(episode, FPS, t0_ns):
        times.append(float(t))
        chunk.append(rgb)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    if not times:
        raise ValueError(f"{episode.meta.video_id}: no camera frames")
    return torch.cat(feats), times


def cached_features(model, bags: Sequence[Bag], cache_dir: Path, *, extract: bool,
                    progress: bool = False) -> dict[str, Features]:
    """Features from ``cache_dir`` (``extract``: encode the bags that are missing or stale first)."""
    from .features import extract_features, load_features, tower_fingerprint

    if extract:
        extract_features(model, [b.path for b in bags], cache_dir, fps=FPS, progress=progress)
    fp = tower_fingerprint(model)
    out = {}
    for b in bags:
        vid = b.episode.meta.video_id
        feats, t = load_features(Path(cache_dir) / f"{vid}.safetensors", fingerprint=fp, fps=FPS,
                                 tokens_per_frame=model.config.tokens_per_frame)
        out[vid] = (feats, [float(x) for x in np.asarray(t)])
    return out


def make_samples(bags: Sequence[Bag] | Sequence[Episode], features: dict[str, Features], chat,
                 cfg: SequenceConfig, *, knowledge_mix: bool, seed: int) -> list[Sample]:
    """All samples: each episode with knowledge, and (``knowledge_mix``, the paper's ×2) again
    without; an episode without a recipe once."""
    samples: list[Sample] = []
    for b in bags:
        ep = b.episode if isinstance(b, Bag) else b
        vid = ep.meta.video_id
        if vid not in features:
            raise KeyError(f"no frame features for {vid}")
        times = features[vid][1]
        has_recipe = bool(ep.task and ep.task.knowledge.strip())
        variants = [True, False] if (has_recipe and knowledge_mix) else [has_recipe]
        for klg in variants:
            new = build_samples(ep, times, chat, knowledge=klg, cfg=cfg, seed=seed)
            for note in new[0].notes:
                log.warning("%s: %s (not trained)", vid, note)
            samples += new
    return samples


class TrainSet:
    """Samples + features; ``item(i, epoch)`` applies this epoch's NFS draw to sample i."""

    def __init__(self, samples: Sequence[Sample], features: dict[str, Features], *,
                 tokens_per_frame: int, rho: float, seed: int) -> None:
        if not samples:
            raise ValueError("no training samples")
        self.samples, self.rho, self.seed = list(samples), float(rho), int(seed)
        self.feats = {vid: f for vid, (f, _) in features.items()}
        for vid, f in self.feats.items():
            if f.ndim != 3 or f.shape[1] != tokens_per_frame:
                raise ValueError(f"{vid}: features {tuple(f.shape)} are not (N, I={tokens_per_frame}, D)")

    def __len__(self) -> int:
        return len(self.samples)

    def item(self, index: int, epoch: int, rho: float | None = None) -> dict:
        s = self.samples[index]
        rho = self.rho if rho is None else rho
        labels = subsample(s.labels, s.negatives, rho, nfs_rng(self.seed, epoch, index))
        feats = self.feats[s.video_id][torch.as_tensor(s.frames, dtype=torch.long)]
        return {"input_ids": torch.tensor(s.input_ids, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
                "feats": feats,
                "key": f"{s.video_id}#{s.chunk}{'+k' if s.knowledge else ''}"}

    def tokens(self) -> int:
        return sum(len(s) for s in self.samples)
