"""ROS 2 bags without a ROS install: write the sample stream, read camera + utterance topics.

Uses ``rosbags`` (MCAP storage, Kilted typestore plus this package's own msg/ types, registered
from the .msg text so bags carry real schemas and rosidl's type hashes). Replays publish the raw
CDR bytes, so what a node receives is byte-for-byte what the bag holds. The dataset format built
on these helpers is in ``data/dataset.py`` (docs/dataset.md).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from proassist_ros.constants import IMAGE_TOPIC, NS_PER_S, UTTERANCE_TOPIC

IMAGE_TYPE = "sensor_msgs/msg/Image"
STRING_TYPE = "std_msgs/msg/String"
BAG_SUFFIXES = (".mcap", ".db3")  # a bare storage file (rosbags reads it without metadata.yaml)


def msg_dir() -> Path:
    """This package's msg/ directory: the source tree's, else the installed share/ copy."""
    for candidate in (Path(__file__).resolve().parents[2] / "msg",
                      Path(sys.prefix) / "share" / "proassist_ros" / "msg"):
        if candidate.is_dir():
            return candidate
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("proassist_ros")) / "msg"


@functools.lru_cache(maxsize=1)
def typestore():
    """Kilted typestore + proassist_ros/msg/* (built from the .msg text: same schema and RIHS01
    hash as the rosidl-generated interfaces, so rclpy's deserialize_message reads the bytes)."""
    ts = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"proassist_ros/msg/{path.stem}"))
    ts.register(types)
    return ts


def _stamp(ts, t_s: float):
    ns = int(round(t_s * NS_PER_S))
    return ts.types["builtin_interfaces/msg/Time"](sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def write_bag(path: Path, frames: Iterable[tuple[float, np.ndarray]],
              utterances: Iterable[tuple[float, str]] = (), frame_id: str = "head_camera",
              t0_s: float = 1_700_000_000.0) -> Path:
    """Write an MCAP bag: rgb8 frames on /camera/image_raw and user utterances (std_msgs/String).

    Stamps are ``t0_s + t`` (a plausible wall-clock epoch, so replays look like a real recording).
    """
    ts = typestore()
    Image, Header, String = (ts.types[n] for n in (IMAGE_TYPE, "std_msgs/msg/Header", STRING_TYPE))
    path = Path(path)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        img_c = w.add_connection(IMAGE_TOPIC, IMAGE_TYPE, typestore=ts)
        utt_c = w.add_connection(UTTERANCE_TOPIC, STRING_TYPE, typestore=ts)
        events: list[tuple[float, int, object]] = []
        for t, rgb in frames:
            h, wd = rgb.shape[:2]
            msg = Image(header=Header(stamp=_stamp(ts, t0_s + t), frame_id=frame_id), height=h, width=wd,
                        encoding="rgb8", is_bigendian=0, step=wd * 3,
                        data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1))
            events.append((t, 0, (img_c, ts.serialize_cdr(msg, IMAGE_TYPE))))
        for t, text in utterances:
            events.append((t, 1, (utt_c, ts.serialize_cdr(String(data=text), STRING_TYPE))))
        for t, _, (conn, raw) in sorted(events, key=lambda e: (e[0], e[1])):
            w.write(conn, int(round((t0_s + t) * NS_PER_S)), raw)
    return path


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    t_ns: int
    raw: bytes


def connection_messages(reader: Any, conns: Collection[Any]) -> Iterator[tuple[Any, int, bytes]]:
    """``reader.messages(connections=conns)`` of a rosbags reader, except that no connection
    reads nothing.

    rosbags reads *every* connection when given an empty list, so a bag lacking a topic (a
    user's camera-only recording has no task, utterances or references) would hand its camera
    frames to code expecting that topic's messages. Every filtered read goes through here.
    """
    if not conns:
        return iter(())
    paths = getattr(reader, "paths", None) or ["bag"]
    return guarded(paths[0], reader.messages(connections=list(conns)))


def guarded(path: Path | str, messages: Iterable[Any]) -> Iterator[Any]:
    """``messages`` of a rosbags reader; damaged storage met while reading (a chunk overwritten
    in the middle of a bag: rosbags' storage readers then raise OverflowError, struct.error, …)
    becomes a ValueError naming the bag."""
    it = iter(messages)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - any storage-level failure, named
            raise ValueError(f"{path}: cannot read this bag: damaged data "
                             f"({type(exc).__name__}: {exc})") from None
        yield item


@contextmanager
def open_bag(path: Path | str) -> Iterator[Any]:
    """A rosbags ``AnyReader`` on ``path``; a bag it cannot read (truncated, damaged storage)
    raises ValueError naming the bag, at open or while reading."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    try:
        with AnyReader([Path(path)], default_typestore=typestore()) as reader:
            yield reader
    except AnyReaderError as exc:
        raise ValueError(f"{path}: cannot read this bag: {exc}") from None


def read_bag(path: Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Messages in log-time order with their raw CDR bytes (any rosbag2 storage, any ROS 2 distro).

    ``topics``: only these (none of them in the bag, or an empty list: no messages); None: all.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    wanted = None if topics is None else set(topics)
    with open_bag(path) as reader:
        if wanted is None:
            stream = guarded(path, reader.messages())
        else:
            stream = connection_messages(reader, [c for c in reader.connections if c.topic in wanted])
        for conn, t_ns, raw in stream:
            yield BagMessage(conn.topic, conn.msgtype, t_ns, bytes(raw))


def is_bag(path: Path) -> bool:
    """A rosbag2 directory (metadata.yaml) or a bare .mcap/.db3 storage file."""
    path = Path(path)
    return (path / "metadata.yaml").is_file() if path.is_dir() else (
        path.is_file() and path.suffix in BAG_SUFFIXES)


def check_bag(path: Path | str) -> Path:
    """``path`` if it is a bag; else FileNotFoundError (missing) or ValueError (not a bag)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    if not is_bag(path):
        raise ValueError(f"not a bag (expected a rosbag2 directory with metadata.yaml, "
                         f"an .mcap or a .db3 file): {path}")
    return path


def read_custom_data(path: Path) -> dict[str, str]:
    """rosbag2 metadata ``custom_data`` of a bag directory or a bare .mcap / .db3 file.

    rosbag2 (and rosbags) write the metadata twice: metadata.yaml and inside the storage file
    (MCAP metadata record "rosbag2", sqlite table ``metadata``), so a storage file copied out of
    its directory keeps its facts. Returns {} when the bag has none.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    text = None
    if path.is_dir():
        meta = path / "metadata.yaml"
        if not meta.is_file():
            raise ValueError(f"not a rosbag2 directory (no metadata.yaml): {path}")
        info = (yaml.safe_load(meta.read_text()) or {}).get("rosbag2_bagfile_information", {})
        return dict(info.get("custom_data") or {})
    if path.suffix == ".mcap":
        from mcap.reader import make_reader

        with path.open("rb") as f:
            for record in make_reader(f).iter_metadata():
                if record.name == "rosbag2":
                    text = record.metadata.get("serialized_metadata")
    elif path.suffix == ".db3":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT metadata FROM metadata ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # bags before rosbag2 format 6 have no such table
            row = None
        finally:
            con.close()
        text = row[0] if row else None
    else:
        raise ValueError(f"not a bag (expected a directory, .mcap or .db3): {path}")
    if not text:
        return {}
    info = yaml.safe_load(text) or {}
    info = info.get("rosbag2_bagfile_information", info)
    return dict(info.get("custom_data") or {})


def parse_json_field(custom: dict[str, str], key: str) -> dict | None:
    """A JSON object stored under one custom_data key; ValueError naming the key if malformed."""
    if key not in custom:
        return None
    try:
        value = json.loads(custom[key])
    except json.JSONDecodeError as exc:
        raise ValueError(f"bag custom_data {key!r} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"bag custom_data {key!r} must hold a JSON object, got {type(value).__name__}")
    return value
