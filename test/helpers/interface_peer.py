"""A separate process for the interface DDS test: echoes Guidance and TaskState back.

Subscribes /peer/in_guidance and /peer/in_task_state, republishes each message unchanged on
/peer/out_guidance and /peer/out_task_state, and exits after echoing both once.
"""

import sys

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from proassist_ros.msg import Guidance, TaskState


def main() -> int:
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    out_g = node.create_publisher(Guidance, "/peer/out_guidance", latched)
    out_t = node.create_publisher(TaskState, "/peer/out_task_state", latched)
    done = {"g": False, "t": False}

    def on_g(msg: Guidance) -> None:
        out_g.publish(msg)
        done["g"] = True

    def on_t(msg: TaskState) -> None:
        out_t.publish(msg)
        done["t"] = True

    node.create_subscription(Guidance, "/peer/in_guidance", on_g, latched)
    node.create_subscription(TaskState, "/peer/in_task_state", on_t, latched)
    print("peer ready", flush=True)
    while rclpy.ok() and not all(done.values()):
        rclpy.spin_once(node, timeout_sec=0.5)
    # Stay until the test has read the latched replies (it terminates us).
    while rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
