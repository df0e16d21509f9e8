"""The dataset format: one task video = one ROS 2 bag (docs/dataset.md), written from an Episode.

A bag is what evaluation replays and training reads, and what a user records with
``ros2 bag record``, so the dataset *is* ROS data: camera frames, the user's utterances, the task
(``proassist_ros/Task``) and the reference assistant turns (``proassist_ros/Guidance`` with their
``kind``) on ordinary topics; per-bag facts (split, seed, generator, ...) as JSON in the rosbag2
metadata ``custom_data`` (stored in metadata.yaml *and* inside the .mcap/.db3 file).

Stamps are ``t0 + t`` with a fixed epoch t0 (stored in the facts), so a replay looks like a real
recording and episode times come back exactly (integer nanoseconds). Reading is in
``dataset_read.py`` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from proassist_ros.constants import AUDIO, KIND_URGENCY, NS_PER_S, absolute
from proassist_ros.data.bags import IMAGE_TOPIC, UTTERANCE_TOPIC, is_bag, typestore
from proassist_ros.data.dataset_read import (  # re-exported: one import for users
    bag_info,
    camera_messages,
    read_episode,
    read_facts,
)
from proassist_ros.data.episode import Episode
from proassist_ros.data.schema import (
    CAPTION_TOPIC,
    COMPRESSED_TOPIC,
    FACTS_KEY,
    FORMAT,
    FRAME_ID,
    JPEG_FORMAT,
    KIND_VALUES,
    REFERENCE_TOPIC,
    T0_NS,
    TASK_TOPIC,
)

_STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

_INF = QosTime(9223372036, 854775807)  # rosbag2's "infinite" duration


AUDIO_TOPIC = absolute(AUDIO)
AUDIO_RATE = 16000  # speech.audio.SAMPLE_RATE (not imported: data/ does not depend on speech/)
AudioChunks = Iterable[tuple[float, bytes]]


def _qos(depth: int, latched: bool = False) -> list[Qos]:
    """Offered QoS: reliable (matches best-effort and reliable subscribers); latched = transient
    local depth 1, so a late subscriber of a replay still gets the task."""
    return [Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE,
                QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
                _INF, _INF, QosLiveliness.AUTOMATIC, _INF, False)]


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {rgb.shape} frame")
    return buf.tobytes()


def decode_jpeg(data: bytes, what: str = "JPEG") -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{what}: not a decodable JPEG/PNG ({len(data)} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _check_times(ep: Episode) -> None:
    for name, items in (("user turn", ep.user_turns), ("reference", ep.references),
                        ("caption", ep.captions)):
        for i, item in enumerate(items):
            try:
                ok = math.isfinite(float(item.t)) and float(item.t) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{name} {i} ({item.text[:40]!r}) has time {item.t!r}: "
                                 "times must be finite seconds >= 0 from the video start")
    for i, ref in enumerate(ep.references):
        if ref.kind not in KIND_VALUES:
            raise ValueError(f"reference {i} ({ref.text[:40]!r}) has kind {ref.kind!r}; "
                             f"expected one of {', '.join(KIND_VALUES)}")


FrameSource = Callable[[], Iterator[tuple[float, np.ndarray | None, bytes | None]]]


def write_episode(ep: Episode, path: Path, *, compressed: bool = True, raw: bool = False,
                  storage: str = "mcap", jpeg_quality: int = 90, t0_ns: int = T0_NS,
                  frame_id: str = FRAME_ID, audio: AudioChunks | None = None) -> Path:
    """Write one episode as a rosbag2 *directory* at ``path`` (it must not exist).

    ``compressed``: JPEG frames on /camera/image_raw/compressed; ``raw``: rgb8 frames on
    /camera/image_raw (both may be set); ``audio``: (t, 16 kHz mono s16le bytes) chunks on
    /proassist/audio (AudioChunk; ``proassist synth --audio``). Returns the bag directory.
    """
    if ep.frames is None:
        raise ValueError(f"episode {ep.meta.video_id!r} has no frames")
    frames = ep.frames

    def source() -> Iterator[tuple[float, np.ndarray | None, bytes | None]]:
        for t, rgb in frames():
            yield t, rgb, None

    return write_frames_episode(ep, path, source, compressed=compressed, raw=raw,
                                storage=storage, jpeg_quality=jpeg_quality, t0_ns=t0_ns,
                                frame_id=frame_id, audio=audio)


def write_frames_episode(ep: Episode, path: Path, source: FrameSource, *, compressed: bool = True,
                         raw: bool = False, storage: str = "mcap", jpeg_quality: int = 90,
                         t0_ns: int = T0_NS, frame_id: str = FRAME_ID,
                         audio: AudioChunks | None = None) -> Path:
    """:func:`write_episode` with frames given as (t, rgb or None, jpeg bytes or None).

    Given JPEG bytes go onto the compressed topic unchanged (an import keeps frames byte-equal);
    pixels are decoded from them only when a raw topic is wanted.
    """
    if not (compressed or raw):
        raise ValueError("nothing to write: set compressed and/or raw")
    if storage not in _STORAGE:
        raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(_STORAGE)}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
    _check_times(ep)
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag already exists (rosbags never overwrites): {path}")
    # Written under a temporary name and renamed when complete: an interrupted or failed write
    # leaves no half bag under the final name.
    tmp = path.with_name(f".{path.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _write(ep, tmp / path.name, source, compressed, raw, storage, jpeg_quality, t0_ns, frame_id,
               audio)
        (tmp / path.name).rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _write(ep: Episode, path: Path, source: FrameSource, compressed: bool, raw: bool, storage: str,
           jpeg_quality: int, t0_ns: int, frame_id: str, audio: AudioChunks | None = None) -> None:
    ts = typestore()
    types = ts.types
    Header, Time, String = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"], \
        types["std_msgs/msg/String"]

    def header(t_ns: int):
        return Header(stamp=Time(sec=t_ns // NS_PER_S, nanosec=t_ns % NS_PER_S), frame_id=frame_id)

    def ns(t: float) -> int:
        return t0_ns + round(t * NS_PER_S)

    meta = dataclasses.replace(ep.meta, extra=dict(ep.meta.extra))
    stats = {"frames": 0, "first": None, "last": None}
    with Writer(path, version=9, storage_plugin=_STORAGE[storage]) as w:
        def conn(topic: str, msgtype: str, depth: int = 10, latched: bool = False):
            return w.add_connection(topic, msgtype, typestore=ts,
                                    offered_qos_profiles=_qos(depth, latched))

        c_raw = conn(IMAGE_TOPIC, "sensor_msgs/msg/Image") if raw else None
        c_jpg = conn(COMPRESSED_TOPIC, "sensor_msgs/msg/CompressedImage") if compressed else None
        c_utt = conn(UTTERANCE_TOPIC, "std_msgs/msg/String")
        c_task = conn(TASK_TOPIC, "proassist_ros/msg/Task", 1, latched=True) if ep.task else None
        c_ref = conn(REFERENCE_TOPIC, "proassist_ros/msg/Guidance")
        c_cap = conn(CAPTION_TOPIC, "std_msgs/msg/String")
        c_audio = conn(AUDIO_TOPIC, "proassist_ros/msg/AudioChunk", 100) if audio else None

        def frame_events() -> Iterator[tuple[int, int, int, object, bytes]]:
            prev = -math.inf
            for i, (t, rgb, jpeg) in enumerate(source()):
                if not (math.isfinite(t) and t >= 0 and t >= prev):
                    raise ValueError(f"frame {i} has time {t!r} (previous {prev}): frame times "
                                     "must be finite, >= 0 and non-decreasing")
                prev = t
                if rgb is None and (raw or not meta.width):
                    rgb = decode_jpeg(jpeg, f"frame {i} at t={t}")
                if rgb is not None:
                    rgb = _check_frame(rgb, i, t, meta)
                if compressed and jpeg is None:
                    jpeg = encode_jpeg(rgb, jpeg_quality)
                stats["frames"] += 1
                stats["first"] = t if stats["first"] is None else stats["first"]
                stats["last"] = t
                t_ns = ns(t)
                if c_raw is not None:
                    h, wd = rgb.shape[:2]
                    msg = types["sensor_msgs/msg/Image"](
                        header=header(t_ns), height=h, width=wd, encoding="rgb8", is_bigendian=0,
                        step=wd * 3, data=np.ascontiguousarray(rgb).reshape(-1))
                    yield t_ns, 2, i, c_raw, ts.serialize_cdr(msg, "sensor_msgs/msg/Image")
                if c_jpg is not None:
                    msg = types["sensor_msgs/msg/CompressedImage"](
                        header=header(t_ns), format=JPEG_FORMAT,
                        data=np.frombuffer(jpeg, np.uint8))
                    yield t_ns, 3, i, c_jpg, ts.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage")

        text: list[tuple[int, int, int, object, bytes]] = []
        if ep.task is not None:
            task = ep.task
            msg = types["proassist_ros/msg/Task"](
                header=header(t0_ns), task_id=task.task_id, task_type=task.task_type,
                goal=task.goal, knowledge=task.knowledge, steps=list(task.steps),
                step_groups=np.asarray(task.step_groups, np.uint16), reset_context=True)
            text.append((t0_ns, 0, 0, c_task, ts.serialize_cdr(msg, "proassist_ros/msg/Task")))
        for i, turn in enumerate(ep.user_turns):
            text.append((ns(turn.t), 1, i, c_utt, ts.serialize_cdr(String(data=turn.text),
                                                                    "std_msgs/msg/String")))
        for i, (t, pcm) in enumerate(audio or ()):  # the user turns spoken (header = capture time)
            msg = types["proassist_ros/msg/AudioChunk"](
                header=Header(stamp=Time(sec=ns(t) // NS_PER_S, nanosec=ns(t) % NS_PER_S),
                              frame_id="microphone"),
                sample_rate=AUDIO_RATE, channels=1, encoding="s16le",
                data=np.frombuffer(pcm, np.uint8))
            text.append((ns(t), 1, i, c_audio, ts.serialize_cdr(msg, "proassist_ros/msg/AudioChunk")))
        for i, cap in enumerate(ep.captions):
            text.append((ns(cap.t), 4, i, c_cap, ts.serialize_cdr(String(data=cap.text),
                                                                   "std_msgs/msg/String")))
        for i, ref in enumerate(ep.references):
            # (priority, interrupt): what a TTS node would do with the turn if replayed live
            priority, interrupt = KIND_URGENCY[KIND_VALUES[ref.kind]]
            msg = types["proassist_ros/msg/Guidance"](
                header=header(ns(ref.t)), session_id=meta.video_id, seq=i, text=ref.text,
                kind=KIND_VALUES[ref.kind], priority=priority, interrupt=interrupt,
                talk_probability=1.0, threshold=0.0, step_index=-1, latency_s=0.0)
            text.append((ns(ref.t), 5, i, c_ref, ts.serialize_cdr(msg, "proassist_ros/msg/Guidance")))
        text.sort(key=lambda e: e[:3])
        # Log-time order; at equal times: task, user turn, frame, caption, reference (a user turn
        # at a frame's time precedes that frame, as in ProAssist; a reply follows it).
        for t_ns, _, _, c, data in heapq.merge(text, frame_events(), key=lambda e: e[:3]):
            w.write(c, t_ns, data)
        if not stats["frames"]:
            raise ValueError(f"episode {meta.video_id!r} yielded no frames")
        _fill_meta(meta, stats)
        facts = {"format": FORMAT, "t0_ns": int(t0_ns), "frame_id": frame_id,
                 "frames": stats["frames"], "meta": dataclasses.asdict(meta)}
        # std_msgs/String has no room for a user turn's kind ("goal", "question"): kept here, in
        # the utterances' log order.
        order = sorted(range(len(ep.user_turns)), key=lambda i: (ns(ep.user_turns[i].t), i))
        if any(u.kind for u in ep.user_turns):
            facts["user_turn_kinds"] = [ep.user_turns[i].kind for i in order]
        try:
            w.set_custom_data(FACTS_KEY, json.dumps(facts, ensure_ascii=False))
        except TypeError as exc:
            raise ValueError(f"episode meta is not JSON-serializable (meta.extra?): {exc}") from exc


def _check_frame(rgb: np.ndarray, i: int, t: float, meta) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"frame {i} at t={t}: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    if not meta.width:
        meta.width, meta.height = w, h
    elif (w, h) != (meta.width, meta.height):
        raise ValueError(f"frame {i} at t={t} is {w}x{h}, the episode's frames are "
                         f"{meta.width}x{meta.height}")
    return rgb


def _fill_meta(meta, stats: dict) -> None:
    """Facts the episode left unset (0), from the frames written."""
    n, first, last = stats["frames"], stats["first"], stats["last"]
    if not meta.hz and n > 1 and last > first:
        meta.hz = round((n - 1) / (last - first), 6)
    if not meta.duration_s:
        meta.duration_s = round(last - first + (1.0 / meta.hz if meta.hz else 0.0), 6)


def iter_dataset(dir_or_bags: Path | str | Iterable[Path | str]) -> Iterator[Path]:
    """The bags of a dataset: a bag, a directory of bags (searched recursively; bag directories
    are not entered), or a list of those. Sorted by path; errors name a missing path."""
    items = [dir_or_bags] if isinstance(dir_or_bags, str | Path) else list(dir_or_bags)
    for item in items:
        root = Path(item)
        if not root.exists():
            raise FileNotFoundError(f"no such bag or dataset directory: {root}")
        if is_bag(root):
            yield root
            continue
        if not root.is_dir():
            raise ValueError(f"not a bag (expected a bag directory, .mcap or .db3): {root}")
        found = _find_bags(root)
        if not found:
            raise ValueError(f"no bags found in {root}")
        yield from found


def _find_bags(root: Path) -> list[Path]:
    out: list[Path] = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):  # hidden, e.g. a bag being written (.NAME.partial)
            continue
        if is_bag(child):
            out.append(child)
        elif child.is_dir():
            out.extend(_find_bags(child))
    return out

__all__ = ["CAPTION_TOPIC", "COMPRESSED_TOPIC", "FACTS_KEY", "FORMAT", "IMAGE_TOPIC",
           "REFERENCE_TOPIC", "TASK_TOPIC", "UTTERANCE_TOPIC", "bag_info", "camera_messages",
           "iter_dataset", "read_episode", "read_facts", "write_episode", "write_frames_episode"]
