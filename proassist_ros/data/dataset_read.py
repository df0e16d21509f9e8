"""Reading dataset bags, and users' own recordings, back into Episodes (docs/dataset.md).

A generated bag carries its facts (rosbag2 custom_data) and the epoch t0 of its stamps, so times
come back exactly. A user's ``ros2 bag record`` has none of that: the facts are then measured from
the camera topic (size, rate, length) and times are taken relative to the bag's first event, so
the first frame is at ``t >= 0``. Such a bag may lack the task and the references; it is still a
valid episode (evaluation then scores nothing; training refuses it).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader

from proassist_ros.data.bags import (
    IMAGE_TOPIC,
    UTTERANCE_TOPIC,
    is_bag,
    parse_json_field,
    read_custom_data,
    typestore,
)
from proassist_ros.data.episode import Caption, Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.data.schema import (
    CAMERA_TYPES,
    CAPTION_TOPIC,
    COMPRESSED_TOPIC,
    FACTS_KEY,
    FORMAT,
    KIND_NAMES,
    NS,
    TASK_TOPIC,
    TEXT_TYPES,
)


def _check_path(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    if not is_bag(path):
        raise ValueError(f"not a bag (expected a rosbag2 directory with metadata.yaml, "
                         f"an .mcap or a .db3 file): {path}")
    return path


def read_facts(path: Path | str) -> dict | None:
    """The bag's facts (format, t0_ns, frame_id, frames, meta), or None for a user's own bag."""
    path = _check_path(path)
    facts = parse_json_field(read_custom_data(path), FACTS_KEY)
    if facts is None:
        return None
    fmt = str(facts.get("format", ""))
    if fmt != FORMAT:
        raise ValueError(f"{path}: unsupported dataset format {fmt!r} (this version reads {FORMAT})")
    for key in ("t0_ns", "meta"):
        if key not in facts:
            raise ValueError(f"{path}: facts lack {key!r}")
    return facts


def _camera_topic(reader: AnyReader, path: Path, prefer: str = "raw") -> str:
    """The camera topic to read: raw if present (lossless), else compressed."""
    present = {c.topic: c.msgtype for c in reader.connections}
    order = [IMAGE_TOPIC, COMPRESSED_TOPIC] if prefer == "raw" else [COMPRESSED_TOPIC, IMAGE_TOPIC]
    for topic in order:
        if topic in present:
            if present[topic] != CAMERA_TYPES[topic]:
                raise ValueError(f"{path}: {topic} has type {present[topic]}, expected "
                                 f"{CAMERA_TYPES[topic]}")
            return topic
    raise ValueError(f"{path}: no camera topic ({IMAGE_TOPIC} or {COMPRESSED_TOPIC}); "
                     f"topics: {', '.join(sorted(present)) or 'none'}")


def camera_messages(path: Path | str, prefer: str = "raw") -> Iterator[tuple[int, Any]]:
    """(header stamp ns, deserialized Image/CompressedImage) of the bag's camera topic."""
    path = _check_path(path)
    with AnyReader([path], default_typestore=typestore()) as reader:
        topic = _camera_topic(reader, path, prefer)
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            yield msg.header.stamp.sec * NS + msg.header.stamp.nanosec, msg


def _stamp_from_cdr(raw: bytes) -> int:
    """A stamped message's header stamp straight from its CDR bytes (no image deserialization)."""
    endian = "<" if raw[1] == 1 else ">"
    sec, nsec = struct.unpack_from(f"{endian}iI", raw, 4)
    return sec * NS + nsec


def _measure_camera(reader: AnyReader, topic: str) -> tuple[list[int], int, int]:
    """All camera stamps and the frame size, for a bag without facts."""
    from proassist_ros.ros.images import image_to_rgb

    stamps: list[int] = []
    width = height = 0
    conns = [c for c in reader.connections if c.topic == topic]
    for conn, _, raw in reader.messages(connections=conns):
        if not stamps:
            height, width = image_to_rgb(reader.deserialize(raw, conn.msgtype)).shape[:2]
        stamps.append(_stamp_from_cdr(raw))
    return stamps, width, height


def read_episode(path: Path | str) -> Episode:
    """A dataset bag (or any bag with a camera topic) as an Episode; frames decode lazily."""
    return read_episode_base(path)[0]


def read_episode_base(path: Path | str) -> tuple[Episode, int]:
    """:func:`read_episode` and the stamp (ns) its ``t = 0`` stands for."""
    path = _check_path(path)
    facts = read_facts(path)
    task = None
    user_turns: list[tuple[int, str]] = []
    refs: list[tuple[int, str, str]] = []
    caps: list[tuple[int, str]] = []
    with AnyReader([path], default_typestore=typestore()) as reader:
        camera = _camera_topic(reader, path)
        conns = []
        for c in reader.connections:
            if c.topic in TEXT_TYPES:
                if c.msgtype != TEXT_TYPES[c.topic]:
                    raise ValueError(f"{path}: {c.topic} has type {c.msgtype}, expected "
                                     f"{TEXT_TYPES[c.topic]}")
                conns.append(c)
        for conn, log_ns, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == TASK_TOPIC:
                task = task or TaskSpec(
                    goal=msg.goal, knowledge=msg.knowledge, steps=list(msg.steps),
                    task_type=msg.task_type, task_id=msg.task_id,
                    step_groups=[int(g) for g in msg.step_groups])
            elif conn.topic == UTTERANCE_TOPIC:
                user_turns.append((log_ns, msg.data))
            elif conn.topic == CAPTION_TOPIC:
                caps.append((log_ns, msg.data))
            else:
                refs.append((msg.header.stamp.sec * NS + msg.header.stamp.nanosec, msg.text,
                             _kind_name(msg.kind, len(refs), path)))
        kinds = [""] * len(user_turns)
        if facts is not None:
            base = int(facts["t0_ns"])
            meta = _meta_from_facts(facts["meta"], path)
            kinds = facts.get("user_turn_kinds", kinds)
            if len(kinds) != len(user_turns):
                raise ValueError(f"{path}: facts give {len(kinds)} user turn kinds for "
                                 f"{len(user_turns)} utterances")
        else:
            stamps, width, height = _measure_camera(reader, camera)
            if not stamps:
                raise ValueError(f"{path}: {camera} has no messages")
            base = min([stamps[0], *(e[0] for e in user_turns + refs + caps)])
            meta = _measured_meta(path, stamps, width, height)

    def t(ns: int) -> float:
        return (ns - base) / NS

    def frames(keep: Callable[[float], bool] | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """(t, rgb) per camera message; ``keep(t)`` False skips a frame before it is decoded."""
        from proassist_ros.ros.images import ImageDecodeError, image_to_rgb

        for i, (stamp, msg) in enumerate(camera_messages(path)):
            if keep is not None and not keep(t(stamp)):
                continue
            try:
                yield t(stamp), image_to_rgb(msg)
            except ImageDecodeError as exc:
                raise ValueError(f"{path}: frame {i} at t={t(stamp):.3f}: {exc}") from exc

    return Episode(meta=meta, task=task,
                   user_turns=[Turn(t(n), text, kind) for (n, text), kind in zip(user_turns, kinds)],
                   references=[Turn(t(n), text, kind) for n, text, kind in refs],
                   captions=[Caption(t(n), text) for n, text in caps], frames=frames), base


def _kind_name(kind: int, index: int, path: Path) -> str:
    if int(kind) not in KIND_NAMES:
        raise ValueError(f"{path}: reference {index} has unknown Guidance.kind {kind}")
    return KIND_NAMES[int(kind)]


def _meta_from_facts(raw: dict, path: Path) -> EpisodeMeta:
    names = {f.name for f in dataclasses.fields(EpisodeMeta)}
    unknown = set(raw) - names
    if unknown or "video_id" not in raw:
        raise ValueError(f"{path}: facts meta has unknown fields {sorted(unknown)} or no video_id")
    return EpisodeMeta(**raw)


def _measured_meta(path: Path, stamps: list[int], width: int, height: int) -> EpisodeMeta:
    n = len(stamps)
    span = (stamps[-1] - stamps[0]) / NS
    hz = round((n - 1) / span, 6) if n > 1 and span > 0 else 0.0
    duration = round(span + (1.0 / hz if hz else 0.0), 6)
    name = path.stem if path.is_file() else path.name
    return EpisodeMeta(video_id=name, duration_s=duration, hz=hz, width=width, height=height)


def bag_info(path: Path | str) -> dict:
    """What `proassist dataset info` prints: facts, topics with types and counts, time span."""
    path = _check_path(path)
    facts = read_facts(path)
    with AnyReader([path], default_typestore=typestore()) as reader:
        topics = {c.topic: {"type": c.msgtype, "count": c.msgcount}
                  for c in sorted(reader.connections, key=lambda c: c.topic)}
        span = reader.duration / NS if reader.message_count else 0.0
        count = reader.message_count
    return {"path": str(path), "facts": facts, "messages": count,
            "log_span_s": round(span, 6), "topics": topics}
