"""A camera stand-in for the node tests: a separate process publishing frames at a fixed rate.

Publishes sensor_msgs/Image (rgb8, bgr8, mono8) or sensor_msgs/CompressedImage (jpeg, png) with
``--qos default`` (rclpy's default publisher QoS: reliable, keep-last 10, what a stock rclpy or
rclcpp camera node uses) or ``--qos sensor`` (best-effort sensor-data QoS, as many camera drivers
do), and deterministic header stamps
(``start + i / rate``, in integer nanoseconds) so a test knows exactly which frames the node's
2 fps gate keeps. Frames listed in ``--malformed`` are broken on purpose (truncated data for raw
images, alternating with an unsupported encoding; garbage bytes for compressed ones).

It waits until a subscriber is matched before the first frame (with ``--go-on-stdin``, also for a
line on stdin: the publisher matching the reader does not mean the reader has matched the
publisher yet, and best-effort frames sent in between are lost), prints one JSON line per frame
(``{"i", "stamp_ns", "malformed"}``) and a final ``{"done": n, "acked": bool}`` line, then exits.
A reliable publisher first waits until every subscriber acknowledged every frame, so a test
that counts frames never races the last ones.

Whether it loads the project's Fast DDS profile is up to its environment
(``FASTDDS_DEFAULT_PROFILES_FILE``): the node tests start it without, as a user's camera runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

RAW = {"rgb8": 3, "bgr8": 3, "mono8": 1}
COMPRESSED = ("jpeg", "png")
QOS = {"default": QoSProfile(depth=10), "sensor": qos_profile_sensor_data}


def _pixels(i: int, width: int, height: int, channels: int) -> np.ndarray:
    """A frame whose content changes with ``i`` (gradient plus a moving bar)."""
    x = np.arange(width, dtype=np.uint16)[None, :]
    y = np.arange(height, dtype=np.uint16)[:, None]
    img = ((x + y + 7 * i) % 256).astype(np.uint8)
    img = np.repeat(img[:, :, None], channels, axis=2)
    bar = (i * 16) % max(1, width - 16)
    img[:, bar:bar + 16, 0] = 255
    return img


def _raw(i: int, args: argparse.Namespace, malformed: bool) -> Image:
    channels = RAW[args.encoding]
    msg = Image(height=args.height, width=args.width, encoding=args.encoding, is_bigendian=0,
                step=args.width * channels)
    data = _pixels(i, args.width, args.height, channels).tobytes()
    if malformed and i % 2:
        msg.encoding = "weird16"  # unsupported encoding, data of the right size
    elif malformed:
        data = data[: len(data) // 3]  # truncated
    msg.data = data
    return msg


def _compressed(i: int, args: argparse.Namespace, malformed: bool) -> CompressedImage:
    import cv2

    msg = CompressedImage(format=f"bgr8; {args.encoding} compressed bgr8")
    if malformed:
        msg.data = b"\xff\xd8 definitely not an image " * 10
        return msg
    ok, buf = cv2.imencode(f".{'jpg' if args.encoding == 'jpeg' else 'png'}",
                           _pixels(i, args.width, args.height, 3))
    assert ok
    msg.data = buf.tobytes()
    return msg


def main(argv: list[str] | None = None) -> int:
    """Publish the frames; exit 2 when no subscriber matched within ``--wait``."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--topic", default="/camera/image_raw")
    p.add_argument("--encoding", choices=[*RAW, *COMPRESSED], default="rgb8")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--rate", type=float, default=10.0, help="frames per second of stamps")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay speed: publish at rate*speed per wall second, stamps unchanged")
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--start", type=float, default=1_700_000_000.0, help="first stamp (s)")
    p.add_argument("--frame-id", default="head_camera_optical_frame")
    p.add_argument("--malformed", default="", help="comma-separated frame indices to break")
    p.add_argument("--qos", choices=list(QOS), default="default",
                   help="default: reliable keep-last 10; sensor: best-effort keep-last 5")
    p.add_argument("--wait", type=float, default=20.0, help="seconds to wait for a subscriber")
    p.add_argument("--cycle", type=int, default=0,
                   help="prepare only this many distinct frames and cycle them (long soak runs)")
    p.add_argument("--quiet", action="store_true", help="no line per frame, only matched/done")
    p.add_argument("--go-on-stdin", action="store_true",
                   help="after matching, start only when a line arrives on stdin")
    args = p.parse_args(argv)
    broken = {int(v) for v in args.malformed.split(",") if v.strip()}
    compressed = args.encoding in COMPRESSED

    rclpy.init()
    node = rclpy.create_node("camera_publisher")

    def say(record: dict) -> None:
        print(json.dumps(record), flush=True)
    msg_type = CompressedImage if compressed else Image
    topic = f"{args.topic}/compressed" if compressed else args.topic
    pub = node.create_publisher(msg_type, topic, QOS[args.qos])

    start_ns = round(args.start * 1e9)
    period_ns = round(1e9 / args.rate)
    # Prepare frames ahead so that the publish rate is not limited by encoding.
    distinct = min(args.cycle, args.count) if args.cycle > 0 else args.count
    frames = []
    for i in range(distinct):
        msg = _compressed(i, args, i in broken) if compressed else _raw(i, args, i in broken)
        msg.header.frame_id = args.frame_id
        frames.append(msg)

    deadline = time.monotonic() + args.wait
    while pub.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            say({"error": f"no subscriber on {topic}"})
            return 2
        time.sleep(0.02)
    say({"matched": topic})
    if args.go_on_stdin:  # the test says when the subscriber's side has matched us too
        sys.stdin.readline()

    t0 = time.monotonic()
    late = 0
    for i in range(args.count):
        msg, stamp = frames[i % distinct], start_ns + i * period_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        delay = t0 + i * period_ns / 1e9 / args.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the camera, not synchronising with the test
        else:
            late += delay < -period_ns / 1e9  # more than a period behind its schedule
        pub.publish(msg)
        if not args.quiet:
            say({"i": i, "stamp_ns": stamp, "malformed": i in broken})
    wall = time.monotonic() - t0
    acked = pub.wait_for_all_acked(Duration(seconds=15))  # best effort: True at once
    rclpy.spin_once(node, timeout_sec=0.3)  # let the last samples leave before tearing down
    say({"done": args.count, "acked": acked, "wall_s": round(wall, 3), "late": int(late)})
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
