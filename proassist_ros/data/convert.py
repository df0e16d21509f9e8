"""`proassist dataset import/export`: bags <-> ProAssist JSON + JPEG frames, and .mp4 -> bag.

Export writes ``OUT/dialogs.json`` (a list of ProAssist video objects, proassist_json.py) and the
frames as ``OUT/frames/{video_uid}/{k:06d}.jpg``. JPEG frames are copied byte for byte from the
bag's compressed topic; raw-only bags are JPEG-encoded. Import reads such a JSON and frame
directory (or an .mp4, decoded with OpenCV) into one bag per conversation, copying JPEG bytes
onto the compressed topic unchanged, so bag -> JSON -> bag keeps frames JPEG-equal.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from proassist_ros.constants import NS_PER_S
from proassist_ros.data.dataset import (
    decode_jpeg,
    encode_jpeg,
    iter_dataset,
    write_frames_episode,
)
from proassist_ros.data.dataset_read import camera_messages, read_episode_base
from proassist_ros.data.episode import Episode
from proassist_ros.data.proassist_json import EXTRA_KEY, episode_to_video, video_to_episodes

JSON_NAME = "dialogs.json"
_FRAME_FILE = re.compile(r"^(\d+)\.jpe?g$", re.I)


def export_bags(bags: Path | Iterable[Path], out: Path, *, fps: float | None = None,
                jpeg_quality: int = 90, progress: Any = None) -> Path:
    """Bags -> OUT/dialogs.json + OUT/frames/. ``fps``: sample frames (default: every frame)."""
    out = Path(out)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if (out / JSON_NAME).exists():
        raise FileExistsError(f"{out / JSON_NAME} exists; export into a new directory")
    videos = []
    for bag in iter_dataset(bags):
        ep, base = read_episode_base(bag)
        uid = ep.meta.video_id
        if not uid or "/" in uid or uid.startswith("."):
            raise ValueError(f"{bag}: video id {uid!r} cannot name a frame directory")
        frame_dir = out / "frames" / uid
        if frame_dir.exists() and any(frame_dir.iterdir()):
            raise FileExistsError(f"frames already exported for {uid!r}: {frame_dir}")
        frame_dir.mkdir(parents=True, exist_ok=True)
        times: list[float] = []
        last = None
        for stamp, msg in camera_messages(bag, prefer="compressed"):
            t = (stamp - base) / NS_PER_S
            if fps:  # keep the first frame of every 1/fps bucket
                bucket = math.floor(t * fps + 1e-6)
                if bucket == last:
                    continue
                last = bucket
            (frame_dir / f"{len(times):06d}.jpg").write_bytes(_jpeg_of(msg, jpeg_quality))
            times.append(t)
        if fps:
            ep.meta.hz = fps
        videos.append(episode_to_video(ep, times, ep.meta.hz))
        if progress is not None:
            progress.update(1)
    out.mkdir(parents=True, exist_ok=True)
    path = out / JSON_NAME
    path.write_text(json.dumps(videos, ensure_ascii=False, indent=1))
    return path


def _jpeg_of(msg: Any, quality: int) -> bytes:
    """A camera message as JPEG bytes: compressed JPEG data unchanged, anything else encoded."""
    if hasattr(msg, "format"):
        data = bytes(memoryview(msg.data))
        if "jpeg" in msg.format.lower() or "jpg" in msg.format.lower():
            if data.startswith(b"\xff\xd8\xff"):
                return data
    from proassist_ros.data.images import image_to_rgb

    return encode_jpeg(image_to_rgb(msg), quality)


def load_videos(json_path: Path) -> list[dict]:
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"ProAssist JSON not found: {json_path}")
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path} is not valid JSON: {exc}") from exc
    videos = data if isinstance(data, list) else [data]
    if not all(isinstance(v, dict) for v in videos):
        raise ValueError(f"{json_path}: expected a list of ProAssist video objects")
    return videos


def _frame_files(frame_dir: Path) -> list[tuple[int, Path]]:
    if not frame_dir.is_dir():
        raise FileNotFoundError(f"frame directory not found: {frame_dir}")
    files = sorted((int(m.group(1)), p) for p in frame_dir.iterdir()
                   if (m := _FRAME_FILE.match(p.name)))
    if not files:
        raise ValueError(f"no frames (NNNNNN.jpg) in {frame_dir}")
    return files


def import_json(json_path: Path, out: Path, *, frames_dir: Path | None = None,
                video_uids: Iterable[str] | None = None, conversation: int | None = None,
                fps: float | None = None, split: str | None = None, **write_kw: Any) -> list[Path]:
    """ProAssist JSON + frames -> one bag per (video, conversation) under ``out``.

    Frame k of ``frames_dir/{video_uid}/`` is at the exported ``frame_times[k]`` if the JSON has
    them, else at ``k / fps`` (ProAssist's convention; fps from --fps or parsed_video_anns.fps).
    """
    json_path = Path(json_path)
    frames_root = Path(frames_dir) if frames_dir else json_path.parent / "frames"
    videos = load_videos(json_path)
    wanted = set(video_uids) if video_uids else None
    if wanted:
        missing = wanted - {str(v.get("video_uid")) for v in videos}
        if missing:
            raise ValueError(f"{json_path}: no video(s) {sorted(missing)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for n, video in enumerate(videos):
        if wanted and str(video.get("video_uid")) not in wanted:
            continue
        episodes = video_to_episodes(video, f"{json_path} video {n}")
        if conversation is not None:
            if not 0 <= conversation < len(episodes):
                raise ValueError(f"{json_path} video {video['video_uid']}: no conversation "
                                 f"{conversation} (it has {len(episodes)})")
            episodes = [episodes[conversation]]
            episodes[0].meta.video_id = str(video["video_uid"])
        files = _frame_files(frames_root / str(video["video_uid"]))
        times = _frame_times(video, files, fps, json_path)
        for ep in episodes:
            if split is not None:
                ep.meta.split = split
            written.append(_write(ep, out / ep.meta.video_id, files, times, write_kw))
    if not written:
        raise ValueError(f"{json_path}: nothing to import")
    return written


def _frame_times(video: dict, files: list[tuple[int, Path]], fps: float | None,
                 where: Path) -> list[float]:
    exported = (video.get(EXTRA_KEY) or {}).get("frame_times")
    if exported is not None and fps is None:
        if len(exported) != len(files) or [i for i, _ in files] != list(range(len(files))):
            raise ValueError(f"{where} video {video['video_uid']}: {len(exported)} frame times "
                             f"but {len(files)} frame files (or gaps in their numbering)")
        return [float(t) for t in exported]
    rate = fps or float((video.get("parsed_video_anns") or {}).get("fps") or 0)
    if not rate > 0:
        raise ValueError(f"{where} video {video['video_uid']}: frame rate unknown; pass --fps")
    return [i / rate for i, _ in files]


def _write(ep: Episode, path: Path, files: list[tuple[int, Path]], times: list[float],
           write_kw: dict) -> Path:
    def source():
        for t, (_, p) in zip(times, files, strict=True):
            yield t, None, p.read_bytes()

    ep.frames = lambda: ((t, decode_jpeg(p.read_bytes(), str(p))) for t, (_, p) in
                         zip(times, files, strict=True))
    return write_frames_episode(ep, path, source, **write_kw)


def import_video(video_path: Path, out: Path, *, annotation: Path | None = None,
                 video_uid: str | None = None, fps: float = 2.0,
                 size: tuple[int, int] | None = None, jpeg_quality: int = 90,
                 split: str | None = None, **write_kw: Any) -> Path:
    """An .mp4 (+ optionally its ProAssist annotation) -> one bag ``out/{video_uid}``.

    Frames are sampled at ``fps`` (first frame of each 1/fps bucket; frame j of the video is at
    j / the video's fps), resized to ``size`` (W, H) if given, and JPEG-encoded. Without an
    annotation the bag is a user's recording: camera only.
    """
    import cv2

    video_path = Path(video_path)
    if not video_path.is_file():
        raise FileNotFoundError(f"video not found: {video_path}")
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {video_path} (OpenCV could not decode it)")
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    if not src_fps > 0:
        raise ValueError(f"{video_path}: the video reports no frame rate")
    uid = video_uid or video_path.stem
    if annotation is not None:
        videos = [v for v in load_videos(annotation) if str(v.get("video_uid")) == uid]
        if len(videos) != 1:
            raise ValueError(f"{annotation}: expected one video with video_uid {uid!r}, "
                             f"found {len(videos)} (pass --video-uid)")
        episodes = video_to_episodes(videos[0], f"{annotation} {uid}")
        ep = episodes[0]
        ep.meta.video_id = uid
    else:
        from proassist_ros.data.episode import EpisodeMeta

        ep = Episode(meta=EpisodeMeta(video_id=uid, generator="mp4"), task=None)
    if split is not None:
        ep.meta.split = split

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        cap = cv2.VideoCapture(str(video_path))
        try:
            j, last = 0, None
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                t, j = j / src_fps, j + 1
                bucket = math.floor(t * fps + 1e-6)
                if bucket == last:
                    continue
                last = bucket
                if size is not None:
                    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
                yield t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    ep.frames = frames
    ep.meta.hz = ep.meta.duration_s = 0.0  # measured from the frames written
    ep.meta.width = ep.meta.height = 0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from proassist_ros.data.dataset import write_episode

    return write_episode(ep, out / uid, jpeg_quality=jpeg_quality, **write_kw)
