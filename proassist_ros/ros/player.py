"""Replay a bag onto live topics (``ros2 bag play`` is not available from the PyPI wheels).

Publishes each message's raw CDR bytes on its topic at the recorded pace (scaled by ``rate``),
best-effort for images like a camera driver, reliable for everything else. With ``clock=True`` it
also publishes /clock from the bag's log time, so nodes with ``use_sim_time`` follow the bag.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from proassist_ros.data.bags import read_bag

_NS = 1_000_000_000


def get_message(msgtype: str) -> type:
    """The rclpy class of "pkg/msg/Name" (rosidl_runtime_py has no wheel here)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def play(node: Node, bag: Path, rate: float = 1.0, topics: list[str] | None = None,
         clock: bool = False, wait_for_subscribers_s: float = 10.0,
         on_message: Callable[[str, int], None] | None = None) -> int:
    """Publish the bag's messages; returns how many were published. Blocks until done."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    pubs: dict[str, object] = {}
    clock_pub = None
    if clock:
        from rosgraph_msgs.msg import Clock

        clock_pub = node.create_publisher(Clock, "/clock", 10)
    start_wall = first_ns = None
    n = 0
    for m in read_bag(bag, topics):
        if m.topic not in pubs:
            qos = qos_profile_sensor_data if "image" in m.msgtype.lower() else QoSProfile(
                depth=10, reliability=ReliabilityPolicy.RELIABLE)
            pub = node.create_publisher(get_message(m.msgtype), m.topic, qos)
            deadline = time.monotonic() + wait_for_subscribers_s
            while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # discovery: wait for the subscriber to match (bounded)
            pubs[m.topic] = pub
        if first_ns is None:
            start_wall, first_ns = time.monotonic(), m.t_ns
        due = start_wall + (m.t_ns - first_ns) / _NS / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing: this is a player, not a test synchronisation
        if clock_pub is not None:
            from builtin_interfaces.msg import Time
            from rosgraph_msgs.msg import Clock

            clock_pub.publish(Clock(clock=Time(sec=m.t_ns // _NS, nanosec=m.t_ns % _NS)))
        pubs[m.topic].publish(m.raw)
        n += 1
        if on_message is not None:
            on_message(m.topic, m.t_ns)
    return n
