"""Stage 2 input: frame features of a frozen tower, extracted once per bag.

With the tower frozen its output for a frame never changes, so encoding every frame again in every
epoch would waste most of a CPU step (the paper trains on pre-extracted features too). For each
bag, the frames the node would keep (``sampled_frames`` at ``fps``, anchored at the first frame)
are encoded by ``model.encode_frames`` — the pre-projector (N, I, D_vision) features the node
computes — and stored as ``{out_dir}/{video_id}.safetensors`` ("feats" float16, "t" float64) with a
JSON sidecar. The sidecar names the tower by a fingerprint of its weights, so features of an older
tower are never mixed with a newer one: a bag is skipped only when fingerprint, fps, I and frame
count all match.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from proassist_ros.constants import NS_PER_S
from proassist_ros.data.dataset import camera_messages, iter_dataset
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.model.safetensors_io import load_safetensors
from proassist_ros.runtime.sampling import FpsGate, sampled_frames

FORMAT = "proassist_ros.features/1"


def tower_fingerprint(model) -> str:
    """sha256 over the vision tower's tensors (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for name, v in sorted(model.vision.state_dict().items()):
        v = v.detach().cpu().contiguous()
        h.update(f"{name}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _sampled_count(bag: Path, t0_ns: int, fps: float) -> int:
    """How many frames ``sampled_frames`` keeps, from the stamps alone (no image decoding)."""
    gate = FpsGate(fps)
    return sum(gate.offer(t0_ns + round((stamp - t0_ns) / NS_PER_S * NS_PER_S)) for stamp, _ in camera_messages(bag))


def _matches(side: Path, want: dict, bag: Path, t0_ns: int, fps: float) -> bool:
    if not side.is_file() or not side.with_suffix(".safetensors").is_file():
        return False
    have = json.loads(side.read_text())
    if any(have.get(k) != v for k, v in want.items()):
        return False
    return have.get("frames") == _sampled_count(bag, t0_ns, fps)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write(tmp)
    os.replace(tmp, path)


def _encode(model, frames, batch: int) -> tuple[torch.Tensor, list[float]]:
    """(N, I, D) float16 features and the N frame times, encoded ``batch`` frames at a time."""
    feats: list[torch.Tensor] = []
    times: list[float] = []
    chunk: list[np.ndarray] = []
    for t, rgb in itertools.chain(frames, [(None, None)]):
        if rgb is not None:
            times.append(t)
            chunk.append(rgb)
        if chunk and (len(chunk) == batch or rgb is None):
            with torch.inference_mode():
                feats.append(model.encode_frames(chunk).to(torch.float16).cpu())
            chunk = []
    return (torch.cat(feats).contiguous() if feats else torch.empty(0)), times


def _save_tensors(tensors: dict, path: Path) -> None:
    save_file(tensors, str(path), metadata={"format": FORMAT})


def _save_json(meta: dict, path: Path) -> None:
    path.write_text(json.dumps(meta, indent=1))


def extract_features(model, bags_or_dirs, out_dir: str | Path, *, fps: float = 2.0, batch: int = 64,
                     overwrite: bool = False, progress: bool = True) -> list[Path]:
    """Encode every bag's sampled frames with ``model``'s tower; returns the feature files in bag order."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bags = list(iter_dataset(bags_or_dirs))
    fp = tower_fingerprint(model)
    tokens, dim = model.config.tokens_per_frame, model.config.vision_hidden_size
    paths: list[Path] = []
    owner: dict[str, Path] = {}
    bar = tqdm(bags, desc="extracting frame features", unit="bag", disable=not progress)
    for bag in bar:
        ep, t0 = read_episode_base(bag)
        vid = ep.meta.video_id
        if vid in owner:
            raise ValueError(f"{bag} and {owner[vid]} have the same video id {vid!r}; their features would collide")
        if not vid or "/" in vid or vid.startswith("."):
            raise ValueError(f"{bag}: video id {vid!r} cannot name a feature file")
        owner[vid] = bag
        target = out / f"{vid}.safetensors"
        want = {"format": FORMAT, "bag": str(Path(bag).resolve()), "video_id": vid, "fps": float(fps),
                "I": tokens, "D": dim, "tower_fingerprint": fp}
        paths.append(target)
        if not overwrite and _matches(sidecar_path(target), want, bag, t0, fps):
            bar.set_postfix_str(f"{vid}: up to date")
            continue
        feats, times = _encode(model, sampled_frames(ep, fps, t0), batch)
        if not times:
            raise ValueError(f"{bag}: no camera frames")
        tensors = {"feats": feats, "t": torch.tensor(times, dtype=torch.float64)}
        sidecar_path(target).unlink(missing_ok=True)  # never a sidecar that vouches for stale features
        _write_atomic(target, partial(_save_tensors, tensors))
        meta = {**want, "frames": len(times), "image_size": model.config.image_size, "dtype": "float16"}
        _write_atomic(sidecar_path(target), partial(_save_json, meta))
        bar.set_postfix_str(f"{vid}: {len(times)} frames")
    return paths


def load_features(path: str | Path, *, fingerprint: str | None = None, fps: float | None = None,
                  tokens_per_frame: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """(feats (N, I, D) float16, t (N,) float64) of one feature file, checked against its sidecar
    and, when given, against the tower fingerprint / fps / I the caller expects."""
    path = Path(path)
    side = sidecar_path(path)
    for p in (path, side):
        if not p.is_file():
            raise FileNotFoundError(f"missing {p} (run extract_features first)")
    meta = json.loads(side.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{side}: format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = load_safetensors(str(path))
    if set(tensors) != {"feats", "t"}:
        raise KeyError(f"{path}: expected tensors 'feats' and 't', found {sorted(tensors)}")
    feats, t = tensors["feats"], tensors["t"].numpy()
    shape = (meta["frames"], meta["I"], meta["D"])
    if tuple(feats.shape) != shape or t.shape != (meta["frames"],):
        raise ValueError(f"{path}: feats {tuple(feats.shape)} / t {t.shape} do not match the sidecar's {shape}")
    for name, want, have in (("tower fingerprint", fingerprint, meta["tower_fingerprint"]),
                             ("fps", None if fps is None else float(fps), meta["fps"]),
                             ("I (tokens per frame)", tokens_per_frame, meta["I"])):
        if want is not None and want != have:
            raise ValueError(f"{path}: {name} is {have!r}, expected {want!r} (re-run extract_features)")
    return feats, t
