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

from proassist_ros.constants import NS_PER_S
from proassist_ros.data.bags import (
    IMAGE_TOPIC,
    UTTERANCE_TOPIC,
    check_bag,
    connection_messages,
    open_bag,
    parse_json_field,
    read_custom_data,
)
from proassist_ros.data.episode import Caption, Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.data.schema import (
    CAMERA_TYPES,
    CAPTION_TOPIC,
    COMPRESSED_TOPIC,
    FACTS_KEY,
    FORMAT,
    KIND_NAMES,
    REFERENCE_TOPIC,
    TASK_TOPIC,
    TEXT_TYPES,
)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")  # what a camera topic holds


def read_facts(path: Path | str) -> dict | None:
    """The bag's facts (format, t0_ns, frame_id, frames, meta), or None for a user's own bag."""
    path = check_bag(path)
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


def camera_candidates(types: dict[str, str]) -> list[str]:
    """The bag's topics holding Image or CompressedImage, sorted."""
    return sorted(t for t, ty in types.items() if ty in IMAGE_TYPES)


def choose_camera_topic(types: dict[str, str], where: Path | str, requested: str | None = None,
                        prefer: str = "raw") -> str:
    """The camera topic to read from a bag whose topics have these ``types`` (topic -> msgtype).

    ``requested`` (``--camera-topic``) must be an Image/CompressedImage topic of the bag. Without
    it: the project's default topics (raw first when ``prefer`` is "raw": lossless), else the one
    image topic of a user's recording, whatever its name; several of those need ``requested``.
    """
    candidates = camera_candidates(types)
    listed = ", ".join(f"{t} ({types[t]})" for t in candidates) or "none"
    if requested:
        if requested not in types:
            raise ValueError(f"{where}: no topic {requested} (camera topics in the bag: {listed})")
        if types[requested] not in IMAGE_TYPES:
            raise ValueError(f"{where}: {requested} has type {types[requested]}, not a camera topic "
                             f"(Image or CompressedImage); camera topics in the bag: {listed}")
        return requested
    order = [IMAGE_TOPIC, COMPRESSED_TOPIC] if prefer == "raw" else [COMPRESSED_TOPIC, IMAGE_TOPIC]
    for topic in order:
        if topic in types:
            if types[topic] != CAMERA_TYPES[topic]:
                raise ValueError(f"{where}: {topic} has type {types[topic]}, expected "
                                 f"{CAMERA_TYPES[topic]}")
            return topic
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(f"{where}: no camera topic (sensor_msgs/Image or CompressedImage); "
                         f"topics: {', '.join(sorted(types)) or 'none'}")
    raise ValueError(f"{where}: {len(candidates)} camera topics and none is the default "
                     f"({IMAGE_TOPIC} or {COMPRESSED_TOPIC}): {listed}; choose one with --camera-topic")


def _camera_topic(reader: AnyReader, path: Path, prefer: str = "raw", requested: str | None = None) -> str:
    return choose_camera_topic({c.topic: c.msgtype for c in reader.connections}, path, requested, prefer)


def camera_messages(path: Path | str, prefer: str = "raw",
                    camera_topic: str | None = None) -> Iterator[tuple[int, Any]]:
    """(header stamp ns, deserialized Image/CompressedImage) of the bag's camera topic
    (:func:`choose_camera_topic`)."""
    path = check_bag(path)
    with open_bag(path) as reader:
        topic = _camera_topic(reader, path, prefer, camera_topic)
        conns = [c for c in reader.connections if c.topic == topic]
        for conn, _, raw in connection_messages(reader, conns):
            msg = reader.deserialize(raw, conn.msgtype)
            yield msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec, msg


def _stamp_from_cdr(raw: bytes) -> int:
    """A stamped message's header stamp straight from its CDR bytes (no image deserialization)."""
    endian = "<" if raw[1] == 1 else ">"
    sec, nsec = struct.unpack_from(f"{endian}iI", raw, 4)
    return sec * NS_PER_S + nsec


def _measure_camera(reader: AnyReader, topic: str) -> tuple[list[int], int, int]:
    """All camera stamps and the frame size, for a bag without facts."""
    from proassist_ros.data.images import image_to_rgb

    stamps: list[int] = []
    width = height = 0
    conns = [c for c in reader.connections if c.topic == topic]
    for conn, _, raw in connection_messages(reader, conns):
        if not stamps:
            height, width = image_to_rgb(reader.deserialize(raw, conn.msgtype)).shape[:2]
        stamps.append(_stamp_from_cdr(raw))
    return stamps, width, height


def read_episode(path: Path | str, camera_topic: str | None = None) -> Episode:
    """A dataset bag (or any bag with a camera topic) as an Episode; frames decode lazily.

    ``camera_topic``: the bag's camera topic (default: :func:`choose_camera_topic`'s choice).
    """
    return read_episode_base(path, camera_topic)[0]


@dataclasses.dataclass
class _Text:
    """The non-camera topics of a bag, at their raw stamps (ns)."""

    task: TaskSpec | None = None
    user_turns: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    refs: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)
    caps: list[tuple[int, str]] = dataclasses.field(default_factory=list)


def _read_text(reader: AnyReader, path: Path) -> _Text:
    """Task, user turns, references and captions; a bag without any of them gives empty lists
    (a camera-only recording), never the camera frames (see ``connection_messages``)."""
    conns = []
    for c in reader.connections:
        if c.topic in TEXT_TYPES:
            if c.msgtype != TEXT_TYPES[c.topic]:
                raise ValueError(f"{path}: {c.topic} has type {c.msgtype}, expected "
                                 f"{TEXT_TYPES[c.topic]}")
            conns.append(c)
    out = _Text()
    for conn, log_ns, raw in connection_messages(reader, conns):
        msg = reader.deserialize(raw, conn.msgtype)
        if conn.topic == TASK_TOPIC:
            out.task = out.task or TaskSpec(
                goal=msg.goal, knowledge=msg.knowledge, steps=list(msg.steps),
                task_type=msg.task_type, task_id=msg.task_id,
                step_groups=[int(g) for g in msg.step_groups])
        elif conn.topic == UTTERANCE_TOPIC:
            out.user_turns.append((log_ns, msg.data))
        elif conn.topic == CAPTION_TOPIC:
            out.caps.append((log_ns, msg.data))
        else:
            out.refs.append((msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec, msg.text,
                             _kind_name(msg.kind, len(out.refs), path)))
    return out


def read_episode_base(path: Path | str, camera_topic: str | None = None) -> tuple[Episode, int]:
    """:func:`read_episode` and the stamp (ns) its ``t = 0`` stands for."""
    path = check_bag(path)
    facts = read_facts(path)
    with open_bag(path) as reader:
        camera = _camera_topic(reader, path, requested=camera_topic)
        text = _read_text(reader, path)
        kinds = [""] * len(text.user_turns)
        if facts is not None:
            base = int(facts["t0_ns"])
            meta = _meta_from_facts(facts["meta"], path)
            kinds = facts.get("user_turn_kinds", kinds)
            if len(kinds) != len(text.user_turns):
                raise ValueError(f"{path}: facts give {len(kinds)} user turn kinds for "
                                 f"{len(text.user_turns)} utterances")
        else:
            stamps, width, height = _measure_camera(reader, camera)
            if not stamps:
                raise ValueError(f"{path}: {camera} has no messages")
            base = min([stamps[0], *(e[0] for e in text.user_turns + text.refs + text.caps)])
            meta = _measured_meta(path, stamps, width, height)

    def t(ns: int) -> float:
        return (ns - base) / NS_PER_S

    def frames(keep: Callable[[float], bool] | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """(t, rgb) per camera message; ``keep(t)`` False skips a frame before it is decoded."""
        from proassist_ros.data.images import ImageDecodeError, image_to_rgb

        for i, (stamp, msg) in enumerate(camera_messages(path, camera_topic=camera)):
            if keep is not None and not keep(t(stamp)):
                continue
            try:
                yield t(stamp), image_to_rgb(msg)
            except ImageDecodeError as exc:
                raise ValueError(f"{path}: {camera} frame {i} at t={t(stamp):.3f}: {exc}") from exc

    return Episode(meta=meta, task=text.task,
                   user_turns=[Turn(t(n), x, k) for (n, x), k in zip(text.user_turns, kinds)],
                   references=[Turn(t(n), x, k) for n, x, k in text.refs],
                   captions=[Caption(t(n), x) for n, x in text.caps], frames=frames), base


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
    span = (stamps[-1] - stamps[0]) / NS_PER_S
    hz = round((n - 1) / span, 6) if n > 1 and span > 0 else 0.0
    duration = round(span + (1.0 / hz if hz else 0.0), 6)
    name = path.stem if path.is_file() else path.name
    return EpisodeMeta(video_id=name, duration_s=duration, hz=hz, width=width, height=height)


def bag_info(path: Path | str, camera_topic: str | None = None) -> dict:
    """What `proassist dataset info` prints: facts, topics with types and counts, time span, and
    the camera topic the readers use (``camera_topic`` chooses it, as ``--camera-topic``).

    A bag whose camera topic cannot be chosen (none, or several without ``camera_topic``) is still
    described: ``camera_topic`` is None and ``camera_problem`` says why, so this command is how
    a user finds the candidates. A ``camera_topic`` the bag lacks raises ValueError.
    """
    path = check_bag(path)
    facts = read_facts(path)
    with open_bag(path) as reader:
        topics = {c.topic: {"type": c.msgtype, "count": c.msgcount}
                  for c in sorted(reader.connections, key=lambda c: c.topic)}
        span = reader.duration / NS_PER_S if reader.message_count else 0.0
        count = reader.message_count
    info = {"path": str(path), "facts": facts, "messages": count,
            "log_span_s": round(span, 6), "topics": topics}
    types = {t: v["type"] for t, v in topics.items()}
    try:
        info["camera_topic"] = choose_camera_topic(types, path, camera_topic)
    except ValueError as exc:
        if camera_topic:
            raise
        info["camera_topic"], info["camera_problem"] = None, str(exc)
    info["camera_candidates"] = camera_candidates(types)
    info["has_task"] = topics.get(TASK_TOPIC, {}).get("count", 0) > 0
    info["references"] = topics.get(REFERENCE_TOPIC, {}).get("count", 0)
    info["user_turns"] = topics.get(UTTERANCE_TOPIC, {}).get("count", 0)
    return info
