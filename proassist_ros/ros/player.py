"""Replay a bag onto live topics (``ros2 bag play`` is not available from the PyPI wheels).

Publishes each message's raw CDR bytes on its topic at the recorded pace (scaled by ``rate``).
Images go out best-effort like a camera driver, or reliable like ``ros2 bag play`` republishing a
dataset bag (``reliable_images``: the bag offers reliable, and a reliable subscriber then gets
every frame, which an evaluation needs); everything else is reliable. With ``clock=True`` a
:class:`SimClock` publishes /clock continuously from the bag's log time (``ros2 bag play --clock``
does the same at 40 Hz), so nodes with ``use_sim_time`` follow the bag and their timers keep
ticking between messages.
"""

from __future__ import annotations

import importlib
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from proassist_ros.constants import NS_PER_S
from proassist_ros.data.bags import BagMessage, read_bag, typestore

CLOCK_HZ = 40.0  # ros2 bag play --clock's default rate


def get_message(msgtype: str) -> type:
    """The rclpy class of "pkg/msg/Name" (rosidl_runtime_py has no wheel here)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def bag_topics(bag: Path) -> dict[str, str]:
    """Topic → message type of every connection in the bag (without reading the messages)."""
    from rosbags.highlevel import AnyReader

    bag = Path(bag)
    if not bag.exists():
        raise FileNotFoundError(f"bag not found: {bag}")
    with AnyReader([bag], default_typestore=typestore()) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def header_stamp_ns(raw: bytes) -> int:
    """The header stamp of a stamped message straight from its CDR bytes (no deserialization)."""
    endian = "<" if raw[1] == 1 else ">"
    sec, nsec = struct.unpack_from(f"{endian}iI", raw, 4)
    return sec * NS_PER_S + nsec


def topic_qos(msgtype: str, reliable_images: bool = False) -> QoSProfile:
    """What the player offers on a topic of ``msgtype``."""
    if "image" in msgtype.lower() and not reliable_images:
        return qos_profile_sensor_data
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class SimClock:
    """/clock from a thread: sim time runs at ``rate`` × wall time from an anchor, like a bag player.

    ``wall_at`` maps a bag time to the wall (monotonic) time at which the clock shows it, so the
    player publishes each message when the clock reaches the message's log time.
    """

    def __init__(self, node: Node, hz: float = CLOCK_HZ) -> None:
        from rosgraph_msgs.msg import Clock

        self._pub = node.create_publisher(Clock, "/clock", 10)
        self._period = 1.0 / hz
        self._lock = threading.Lock()
        self._anchor: tuple[float, int, float] | None = None  # (wall, sim_ns, rate)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-clock", daemon=True)

    def start(self, sim_ns: int, rate: float) -> None:
        """Show ``sim_ns`` now and run at ``rate`` from here (starts the publishing thread)."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        with self._lock:
            self._anchor = (time.monotonic(), int(sim_ns), float(rate))
        if not self._thread.is_alive():
            self._thread.start()

    def now_ns(self) -> int:
        with self._lock:
            if self._anchor is None:
                raise RuntimeError("SimClock.start() first")
            wall, sim, rate = self._anchor
        return sim + int((time.monotonic() - wall) * rate * NS_PER_S)

    def wall_at(self, sim_ns: int) -> float:
        """The monotonic time at which the clock shows ``sim_ns``."""
        with self._lock:
            if self._anchor is None:
                raise RuntimeError("SimClock.start() first")
            wall, sim, rate = self._anchor
        return wall + (sim_ns - sim) / NS_PER_S / rate

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        while not self._stop.wait(self._period):
            ns = self.now_ns()
            self._pub.publish(Clock(clock=Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)))


def pace(messages: Iterable[BagMessage], due: Callable[[int], float],
         publish: Callable[[BagMessage], None]) -> int:
    """Publish each message at ``due(t_ns)`` (a monotonic time); returns how many were published."""
    n = 0
    for m in messages:
        delay = due(m.t_ns) - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing: this is a player, not a test synchronisation
        publish(m)
        n += 1
    return n


def play(node: Node, bag: Path, rate: float = 1.0, topics: list[str] | None = None,
         clock: bool = False, wait_for_subscribers_s: float = 10.0,
         on_message: Callable[[str, int], None] | None = None,
         reliable_images: bool = False, remap: dict[str, str] | None = None) -> int:
    """Publish the bag's messages; returns how many were published. Blocks until done.

    ``topics``: only these bag topics (none of them in the bag: nothing is published).
    ``remap``: bag topic -> topic to publish it on, e.g. a recording's ``/usb_cam/image`` onto the
    ``/camera/image_raw`` the assistant subscribes. Publishers are created, and matched (bounded by
    ``wait_for_subscribers_s``), before the first message, so discovery never delays the messages
    it would otherwise hold up.
    """
    if rate <= 0:
        raise ValueError("rate must be > 0")
    remap = remap or {}
    types = {t: ty for t, ty in bag_topics(bag).items() if topics is None or t in topics}
    missing = sorted(set(remap) - set(types))
    if missing:
        raise ValueError(f"{bag}: cannot remap {', '.join(missing)}: not among the played topics "
                         f"({', '.join(sorted(types)) or 'none'})")
    pubs: dict[str, Any] = {t: node.create_publisher(get_message(ty), remap.get(t, t),
                                                     topic_qos(ty, reliable_images))
                            for t, ty in types.items()}
    deadline = time.monotonic() + wait_for_subscribers_s
    while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # discovery: wait for the subscribers to match (bounded)
    messages = read_bag(bag, list(types))
    first = next(messages, None)
    if first is None:
        return 0
    sim = SimClock(node) if clock else None
    if sim is not None:
        sim.start(first.t_ns, rate)
        due = sim.wall_at
    else:
        start_wall = time.monotonic()

        def due(t_ns: int) -> float:
            return start_wall + (t_ns - first.t_ns) / NS_PER_S / rate

    def publish(m: BagMessage) -> None:
        pubs[m.topic].publish(m.raw)
        if on_message is not None:
            on_message(m.topic, m.t_ns)

    try:
        return pace(_chain(first, messages), due, publish)
    finally:
        if sim is not None:
            sim.stop()


def _chain(first: BagMessage, rest: Iterable[BagMessage]) -> Iterable[BagMessage]:
    yield first
    yield from rest
