"""A std_msgs/String whose bytes are not UTF-8 (rclcpp publishes them unchecked): rclpy hands the
node the text with replacement characters, and the assistant feeds it as plain text and keeps
answering."""

from __future__ import annotations

import pytest
from helpers import OutputDrain
from test_assistant_node import CAMERA, NODE, Probe
from test_assistant_node import camera as camera  # noqa: F401 - fixture
from test_assistant_node import probe as probe  # noqa: F401 - fixture


def _cdr_string(payload: bytes) -> bytes:
    """A serialized std_msgs/String (CDR little endian) holding ``payload`` as its bytes."""
    n = len(payload) + 1
    return b"\x00\x01\x00\x00" + n.to_bytes(4, "little") + payload + b"\x00"


@pytest.mark.dds
def test_non_utf8_utterances_do_not_stop_the_node(spawn, camera, probe: Probe):  # noqa: F811
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String

    node = OutputDrain(spawn(NODE))
    probe.wait(lambda: probe.stats, 150, "the node to come up", on_timeout=node.text)
    pub = probe.node.create_publisher(String, "/proassist/user_utterance", QoSProfile(depth=10))
    probe.wait(lambda: pub.get_subscription_count() == 1, 30, "the node's utterance subscription")
    pub.publish(_cdr_string(b"\xff\xfe not utf-8 \xc3\x28"))
    pub.publish(String(data="what next?"))
    cam = camera([CAMERA, "--count", "2", "--rate", "2", "--width", "64", "--height", "48"])
    assert cam.wait(timeout=120) == 0, cam.stdout.read()
    # θ = 1: the frame after the two utterances speaks (an answer): both were fed without error
    probe.wait(lambda: probe.guidance, 60, "guidance after the utterances", on_timeout=node.text)
    assert node.proc.poll() is None and "Traceback" not in node.text(), node.text()
