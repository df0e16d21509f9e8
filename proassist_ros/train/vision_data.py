"""Data for stage 1 (vision pretraining): cached frames with their captions, words, augmentation.

Decoding JPEGs and resizing every frame again in every epoch would cost more than the tower's
training step on 2 cores, so the frames the node would keep (``sampled_frames``) are preprocessed
once, exactly as the model does at inference (``model.vision.preprocess``: bicubic resize of the
shorter side, centre crop), and stored as uint8 at the tower's input size in a ``.npy`` that is
memory-mapped afterwards. ``to_pixels`` turns them into the same pixel values ``preprocess`` gives.

The text side uses a word-level vocabulary built from the training captions: the captions are
generated from a small grammar (a few hundred words), so whole-word tokens keep them short (~60
tokens) and the text tower's embedding small, where the 49k-entry SmolLM2 BPE would spend most of
a tiny text tower on an embedding table of which ~1 % is used. The text tower only exists to
train the vision tower and is not shipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from proassist_ros.data.dataset import iter_dataset
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.model.vision import preprocess
from proassist_ros.runtime.sampling import sampled_frames

log = logging.getLogger(__name__)

CACHE_VERSION = 2
CAPTION_SLACK_S = 1e-3  # a caption logged at a frame's time belongs to that frame


@dataclass
class FrameSet:
    """Cached frames (N,S,S,3) uint8 and, per frame, its caption, video, time and task progress."""

    frames: np.ndarray
    captions: list[str]
    videos: list[str]
    t: np.ndarray
    progress: np.ndarray  # steps finished by t (from the generator's facts), -1 where unknown
    tasks: list[str]  # the video's task type ("" when the bag does not say)
    skipped: int = 0  # sampled frames without any caption at or before them

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, idx: np.ndarray) -> FrameSet:
        """The frames at ``idx``, loaded into memory (for small held-out sets)."""
        return FrameSet(np.asarray(self.frames[idx]), [self.captions[i] for i in idx],
                        [self.videos[i] for i in idx], self.t[idx], self.progress[idx],
                        [self.tasks[i] for i in idx], 0)


def _bags_key(bags: Sequence[Path], image_size: int, fps: float) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, image_size, float(fps)]).encode())
    for b in bags:  # a bag changes → its files' sizes or times change → a new cache
        files = sorted(b.iterdir()) if b.is_dir() else [b]
        h.update(f"{b.resolve()}|{[(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]}".encode())
    return h.hexdigest()[:16]


def _progress_at(steps: list[dict], t: float) -> int:
    return sum(1 for s in steps if float(s.get("t_end", np.inf)) <= t) if steps else -1


def to_uint8(frames: list[np.ndarray], image_size: int) -> np.ndarray:
    """RGB frames → (N,S,S,3) uint8 holding exactly what ``preprocess`` feeds the tower.

    Runs on one intra-op thread: ``preprocess`` is many small per-frame ops, and on a busy 2-core
    machine two OpenMP threads spin-waiting on each other made it ~9× slower (measured).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = preprocess(frames, image_size)  # (N,3,S,S) in [-1,1], from whole numbers in [0,255]
    finally:
        torch.set_num_threads(threads)
    return ((x * 0.5 + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def to_pixels(frames_u8: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N,S,S,3) uint8 → (N,3,S,S) pixel values, as ``preprocess`` normalises (×1/255, −0.5, /0.5)."""
    x = torch.tensor(np.asarray(frames_u8)).permute(0, 3, 1, 2).float()  # a copy: caches are read-only
    return (x / 255.0 - 0.5) / 0.5


def cache_frames(bags_or_dirs, cache_dir: Path, image_size: int, fps: float, *, progress: bool = True) -> FrameSet:
    """The sampled, preprocessed frames of ``bags_or_dirs`` with their captions (built once)."""
    from tqdm import tqdm

    bags = list(iter_dataset(bags_or_dirs))
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _bags_key(bags, image_size, fps)
    npy, meta_path = cache_dir / f"frames_{key}.npy", cache_dir / f"frames_{key}.json"
    if not (npy.is_file() and meta_path.is_file()):
        raw = cache_dir / f".frames_{key}.{os.getpid()}.raw"
        rows: dict[str, list] = {"captions": [], "videos": [], "t": [], "progress": [], "tasks": []}
        skipped = 0
        with raw.open("wb") as out:
            for bag in tqdm(bags, desc=f"caching frames at {image_size} px", unit="bag", disable=not progress):
                ep, t0 = read_episode_base(bag)
                caps = sorted(ep.captions, key=lambda c: c.t)
                if not caps:
                    raise ValueError(f"{bag}: no captions (/proassist/caption); vision pretraining needs them")
                cap_t = np.array([c.t for c in caps])
                steps = list(ep.meta.extra.get("steps", []))
                task = ep.meta.task_type or (ep.task.task_type if ep.task else "")
                kept: list[np.ndarray] = []
                for t, rgb in sampled_frames(ep, fps, t0):
                    k = int(np.searchsorted(cap_t, t + CAPTION_SLACK_S, side="right")) - 1
                    if k < 0:
                        skipped += 1
                        continue
                    kept.append(rgb)
                    rows["captions"].append(caps[k].text)
                    rows["videos"].append(ep.meta.video_id)
                    rows["t"].append(float(t))
                    rows["progress"].append(_progress_at(steps, t))
                    rows["tasks"].append(task)
                    if len(kept) == 64:
                        out.write(to_uint8(kept, image_size).tobytes())
                        kept = []
                if kept:
                    out.write(to_uint8(kept, image_size).tobytes())
        n = len(rows["captions"])
        if n == 0:
            raw.unlink()
            raise ValueError(f"no captioned frames in {len(bags)} bag(s)")
        if skipped:
            log.warning("%d sampled frame(s) come before their bag's first caption and are not used", skipped)
        tmp = cache_dir / f".frames_{key}.{os.getpid()}.npy"
        np.save(tmp, np.memmap(raw, np.uint8, "r", shape=(n, image_size, image_size, 3)))
        raw.unlink()
        meta = {"version": CACHE_VERSION, "image_size": image_size, "fps": fps, "skipped": skipped,
                "bags": [str(b) for b in bags], **rows}
        tmp_meta = cache_dir / f".frames_{key}.{os.getpid()}.json"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)
        os.replace(tmp, npy)  # last: a cache is complete once its .npy exists
    meta = json.loads(meta_path.read_text())
    return FrameSet(np.load(npy, mmap_mode="r"), meta["captions"], meta["videos"], np.array(meta["t"]),
                    np.array(meta["progress"], dtype=np.int64), meta["tasks"], int(meta["skipped"]))


# ---- text targets -------------------------------------------------------------------------------
TARGETS = ("phrases", "captions")


def _split_outside_parens(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    return [*parts, "".join(cur)]


def phrases(caption: str) -> list[str]:
    """A caption's facts: each thing on the table with its states, what the hand holds, the action.

    "On the table: a glass (empty), a jug (full of water); the hand is reaching for the jug." →
    ["a glass (empty)", "a jug (full of water)", "the hand is reaching for the jug"]. Any other
    text is split the same way (at ";" and at commas outside parentheses).
    """
    out: list[str] = []
    for clause in caption.strip().rstrip(".").split(";"):
        clause = clause.strip()
        head, colon, body = clause.partition(":")
        items = _split_outside_parens(body if colon and head.strip().lower() == "on the table" else clause)
        out += [p.strip() for p in items if p.strip()]
    return list(dict.fromkeys(out)) or [caption]


def text_targets(caption: str, targets: str) -> list[str]:
    """What the text tower reads for a frame: its caption's phrases, or the whole caption."""
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {targets!r}")
    return phrases(caption) if targets == "phrases" else [caption]


# ---- words --------------------------------------------------------------------------------------
WORD_RE = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
SPECIALS = ("<pad>", "<unk>", "<eos>")
PAD, UNK, EOS = 0, 1, 2


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


class CaptionVocab:
    """Whole-word vocabulary of the training captions; unknown words map to ``<unk>``."""

    def __init__(self, tokens: Sequence[str], max_len: int) -> None:
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        self.tokens = list(tokens)
        self.index = {w: i for i, w in enumerate(self.tokens)}
        self.max_len = int(max_len)

    @classmethod
    def build(cls, captions: Sequence[str], max_len_cap: int = 192) -> CaptionVocab:
        uniq = sorted(set(captions))
        found = sorted({w for c in uniq for w in words(c)})
        longest = max(len(words(c)) for c in uniq) + 1  # + <eos>
        return cls([*SPECIALS, *found], min(max_len_cap, longest + 16))  # slack for longer val captions

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "max_len": self.max_len}

    @classmethod
    def from_dict(cls, d: dict) -> CaptionVocab:
        return cls(d["tokens"], d["max_len"])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Word ids + ``<eos>``; a caption longer than ``max_len`` keeps its *end* (the action)."""
        ids = [self.index.get(w, UNK) for w in words(text)] + [EOS]
        return ids[-self.max_len :]

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded ids, attention mask and position ids (real tokens start at position 0).

        SigLIP's text tower pools the *last* position; left padding puts ``<eos>`` there for every
        caption, and explicit positions keep a caption's encoding independent of its batch.
        """
        enc = [self.encode(t) for t in texts]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        pos = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, width - len(e) :] = torch.tensor(e)
            mask[i, width - len(e) :] = 1
            pos[i, width - len(e) :] = torch.arange(len(e))
        return ids, mask, pos


# ---- augmentation -------------------------------------------------------------------------------
def augment(pixels: torch.Tensor, gen: torch.Generator, crop: float = 0.12, jitter: float = 0.1) -> torch.Tensor:
    """Light augmentation of (B,3,S,S) pixel values in [-1,1]: a small random crop, colour jitter.

    The crop keeps ≥ (1 − crop) of each side at a random offset and is resized back (bilinear),
    so objects stay in view and the caption stays true; brightness, contrast and saturation each
    vary by ±jitter. No flips: captions and steps say left/right.
    """
    b, _, s, _ = pixels.shape
    r = torch.rand(b, 6, generator=gen)
    f = 1.0 - crop * r[:, 0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = f
    theta[:, 0, 2] = (1 - f) * (2 * r[:, 1] - 1)
    theta[:, 1, 2] = (1 - f) * (2 * r[:, 2] - 1)
    grid = F.affine_grid(theta, [b, 3, s, s], align_corners=False)
    x = F.grid_sample(pixels * 0.5 + 0.5, grid, mode="bilinear", padding_mode="border", align_corners=False)
    scale = 1 + jitter * (2 * r[:, 3:] - 1)  # brightness, contrast, saturation
    x = x * scale[:, 0, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * scale[:, 1, None, None, None] + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * scale[:, 2, None, None, None] + gray
    return (x.clamp(0, 1) - 0.5) / 0.5
