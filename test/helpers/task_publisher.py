"""A separate process for the task-topic test: publishes one proassist_ros/Task and stays.

``--qos latched`` (default) is what Task.msg documents: reliable + transient local, rclpy's
default depth 10, so a node that starts later still gets the task. ``--qos volatile`` is rclpy's
plain default (reliable, volatile), which a transient-local subscription cannot match: the node
must say so. Prints ``{"published": task_id}`` and spins until terminated.
"""

from __future__ import annotations

import argparse
import json
import sys

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile

from proassist_ros.msg import Task

QOS = {"latched": QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL),
       "volatile": QoSProfile(depth=10)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--topic", default="/proassist/task")
    p.add_argument("--task-id", default="tea-1")
    p.add_argument("--goal", default="I want to make a cup of tea.")
    p.add_argument("--knowledge", default="")
    p.add_argument("--step", action="append", default=[], help="one step (repeatable)")
    p.add_argument("--reset-context", action="store_true")
    p.add_argument("--qos", choices=list(QOS), default="latched")
    args = p.parse_args(argv)

    rclpy.init()
    node = rclpy.create_node("task_publisher")
    pub = node.create_publisher(Task, args.topic, QOS[args.qos])
    msg = Task(task_id=args.task_id, task_type="make_tea", goal=args.goal,
               knowledge=args.knowledge, steps=args.step,
               step_groups=list(range(1, len(args.step) + 1)), reset_context=args.reset_context)
    msg.header.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
    print(json.dumps({"published": args.task_id}), flush=True)
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
