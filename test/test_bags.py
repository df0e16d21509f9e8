"""Sample data and bag I/O: the synthetic stream is deterministic and survives a bag round trip."""

from __future__ import annotations

import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import String

from proassist_ros.data.bags import IMAGE_TOPIC, UTTERANCE_TOPIC, read_bag, write_bag
from proassist_ros.data.synthetic import render, step_at, stream
from proassist_ros.ros.images import image_to_rgb


def test_synthetic_stream_is_deterministic_and_follows_steps():
    assert np.array_equal(render(3.0), render(3.0))
    assert not np.array_equal(render(3.0), render(20.0))
    assert [step_at(t) for t in (0.0, 7.9, 8.1, 15.0, 21.0, 100.0)] == [0, 0, 1, 2, 3, 3]
    stamps = [t for t, _ in stream(3.0, fps=2.0)]
    assert stamps == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # frame k has stamp (k+1)/fps (spec §2.1)


def test_bag_round_trip_is_byte_exact_for_rclpy(tmp_path):
    frames = list(stream(1.0, fps=10.0, size=(48, 64)))
    write_bag(tmp_path / "bag", frames, [(0.35, "which cup?")], t0_s=100.0)
    msgs = list(read_bag(tmp_path / "bag"))
    assert [m.topic for m in msgs].count(IMAGE_TOPIC) == len(frames)
    assert [m.t_ns for m in msgs] == sorted(m.t_ns for m in msgs)
    images = [deserialize_message(m.raw, Image) for m in msgs if m.topic == IMAGE_TOPIC]
    for (t, rgb), img in zip(frames, images, strict=True):
        assert img.header.stamp.sec + img.header.stamp.nanosec / 1e9 == 100.0 + t
        assert np.array_equal(image_to_rgb(img), rgb)
    (utt,) = [deserialize_message(m.raw, String) for m in msgs if m.topic == UTTERANCE_TOPIC]
    assert utt.data == "which cup?"
