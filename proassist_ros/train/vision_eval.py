"""Held-out checks of a stage-1 tower: caption retrieval, and whether its features tell the task state.

Retrieval (image → caption among the distinct held-out captions, recall@1/@5) shows the pair
learned the captions' grammar. What matters for the assistant is narrower: the LLM only sees the
frame features (token 1 = ``pooler_output``), and must tell from them which step the wearer has
done. So, without any text or probe: for each held-out frame, take its nearest neighbour by
feature cosine among frames of the same video at least ``window_s`` away (so the answer is not
just "the next frame"), and count how often that neighbour shows the same object states (the
caption's "On the table: …" part) and the same task progress (steps finished, from the
generator's facts). Neighbours in the same video can also agree through the camera's pose, so a
third check looks across videos: the nearest *training* frame of the same task type from another
video — other colours, layout and camera path — must have finished as many steps. The same
numbers for a random tower of the same architecture, and the chance of a random neighbour, put
them in context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from proassist_ros.model.vision import build_vision_tower
from proassist_ros.train.vision_data import UNK, FrameSet, text_targets, to_pixels

STATE_WINDOW_S = 2.0


def state_of(caption: str) -> str:
    """The objects and their states, without what the hands hold or do."""
    return caption.split(";")[0]


@torch.no_grad()
def image_features(vision, frames_u8: np.ndarray, batch: int = 128) -> torch.Tensor:
    """(N, D) ``pooler_output`` of cached frames: the frame token the LLM sees at I = 1."""
    dev = next(vision.parameters()).device
    out = [vision(pixel_values=to_pixels(frames_u8[i : i + batch]).to(dev)).pooler_output.float().cpu()
           for i in range(0, len(frames_u8), batch)]
    return torch.cat(out)


@torch.no_grad()
def caption_scores(pair, img: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
    """(N, C) image–caption scores: the mean cosine over each caption's text targets (its phrases,
    or itself when the pair was trained on whole captions)."""
    per = [text_targets(c, pair.targets) for c in captions]
    texts = list(dict.fromkeys(t for ts in per for t in ts))
    emb = torch.cat([pair.embed_texts(texts[i : i + 256]).float().cpu() for i in range(0, len(texts), 256)])
    sims = F.normalize(img, dim=-1) @ F.normalize(emb, dim=-1).T  # (N, T)
    col = {t: j for j, t in enumerate(texts)}
    member = torch.zeros(len(texts), len(captions))
    for k, ts in enumerate(per):
        member[[col[t] for t in ts], k] = 1.0 / len(ts)
    return sims @ member


def _rates(hits: int, chance: float, n: int) -> dict:
    """Accuracy and chance over n queries (None when there was no query: JSON has no NaN)."""
    return {"accuracy": round(hits / n, 4) if n else None, "chance": round(chance / n, 4) if n else None,
            "queries": n}


def neighbour_accuracy(feats: torch.Tensor, videos: Sequence[str], t: np.ndarray, labels: Sequence,
                       window_s: float = STATE_WINDOW_S) -> dict[str, float]:
    """Same-label rate of each frame's nearest neighbour (same video, ≥ window_s apart), and chance."""
    f = F.normalize(feats.float(), dim=-1)
    lab = np.asarray([str(x) for x in labels])
    vids = np.asarray(videos)
    hits, chance, n = 0, 0.0, 0
    for v in sorted(set(videos)):
        idx = np.flatnonzero(vids == v)
        sims = (f[idx] @ f[idx].T).numpy()
        far = np.abs(t[idx][:, None] - t[idx][None, :]) >= window_s
        same = lab[idx][:, None] == lab[idx][None, :]
        for q in range(len(idx)):
            if not far[q].any():
                continue
            cand = np.flatnonzero(far[q])
            hits += bool(same[q, cand[np.argmax(sims[q, cand])]])
            chance += float(same[q, cand].mean())
            n += 1
    return _rates(hits, chance, n)


def cross_video_progress(feats: torch.Tensor, data: FrameSet, ref_feats: torch.Tensor,
                         ref: FrameSet) -> dict[str, float]:
    """Same-progress rate of each frame's nearest neighbour among *other* videos of its task type.

    Other videos have other colours, layouts and camera paths, so a neighbour can only agree on
    progress through what the frame shows of the task's state.
    """
    f, r = F.normalize(feats.float(), dim=-1), F.normalize(ref_feats.float(), dim=-1)
    ref_tasks, ref_vids = np.asarray(ref.tasks), np.asarray(ref.videos)
    hits, chance, n = 0, 0.0, 0
    for q in range(len(data)):
        if data.progress[q] < 0 or not data.tasks[q]:
            continue
        cand = np.flatnonzero((ref_tasks == data.tasks[q]) & (ref.progress >= 0) & (ref_vids != data.videos[q]))
        if not len(cand):
            continue
        same = ref.progress[cand] == data.progress[q]
        hits += bool(same[int(torch.argmax(r[cand] @ f[q]))])
        chance += float(same.mean())
        n += 1
    return _rates(hits, chance, n)


def _state_checks(vision, data: FrameSet, ref: FrameSet | None, window_s: float) -> dict:
    feats = image_features(vision, data.frames)
    out = {"same_state": neighbour_accuracy(feats, data.videos, data.t, [state_of(c) for c in data.captions],
                                            window_s)}
    known = np.flatnonzero(data.progress >= 0)
    if len(known):
        out["same_progress"] = neighbour_accuracy(feats[known], [data.videos[i] for i in known], data.t[known],
                                                  data.progress[known].tolist(), window_s)
    if ref is not None:
        out["cross_video_progress"] = cross_video_progress(feats, data, image_features(vision, ref.frames), ref)
    return out


@torch.no_grad()
def evaluate_tower(pair, data: FrameSet, *, reference: FrameSet | None = None, seed: int = 0,
                   window_s: float = STATE_WINDOW_S) -> dict:
    """Retrieval and neighbour-state numbers on held-out frames (see the module docstring);
    ``reference`` (training frames) adds the cross-video progress check."""
    pair.eval()
    img = image_features(pair.vision, data.frames)
    distinct = sorted(set(data.captions))
    sims = caption_scores(pair, img, distinct)
    true = torch.tensor([distinct.index(c) for c in data.captions])
    top = sims.topk(min(5, len(distinct)), dim=1).indices
    states = [state_of(c) for c in data.captions]
    ids = [i for c in distinct for t in text_targets(c, pair.targets) for i in pair.vocab.encode(t)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        random_tower = build_vision_tower(pair.vision.config.to_dict()).to(next(pair.vision.parameters()).device)
    return {
        "frames": len(data), "videos": len(set(data.videos)), "distinct_captions": len(distinct),
        "unknown_word_rate": round(sum(i == UNK for i in ids) / max(1, len(ids)), 4),
        "recall@1": round(float((top[:, 0] == true).float().mean()), 4),
        "recall@5": round(float((top == true[:, None]).any(dim=1).float().mean()), 4),
        "chance@1": round(1 / len(distinct), 4),
        "state_recall@1": round(float(np.mean([state_of(distinct[int(k)]) == s
                                                for k, s in zip(top[:, 0], states)])), 4),
        "window_s": window_s,
        "trained_tower": _state_checks(pair.vision, data, reference, window_s),
        "random_tower": _state_checks(random_tower, data, reference, window_s),
    }
