"""ROS 2 bags without a ROS install: write the sample stream, read camera + utterance topics.

Uses ``rosbags`` (MCAP storage, Kilted typestore). Replays publish the raw CDR bytes, so what a
node receives is byte-for-byte what the bag holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

IMAGE_TOPIC = "/camera/image_raw"
UTTERANCE_TOPIC = "/proassist/user_utterance"
IMAGE_TYPE = "sensor_msgs/msg/Image"
STRING_TYPE = "std_msgs/msg/String"
_NS = 1_000_000_000


def typestore():
    return get_typestore(Stores.ROS2_KILTED)


def _stamp(ts, t_s: float):
    ns = int(round(t_s * _NS))
    return ts.types["builtin_interfaces/msg/Time"](sec=ns // _NS, nanosec=ns % _NS)


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
            w.write(conn, int(round((t0_s + t) * _NS)), raw)
    return path


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    t_ns: int
    raw: bytes


def read_bag(path: Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Messages in log-time order with their raw CDR bytes (any rosbag2 storage, any ROS 2 distro)."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    with AnyReader([path], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in set(topics)]
        for conn, t_ns, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, t_ns, bytes(raw))
