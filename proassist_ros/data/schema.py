"""The dataset bag schema in one place: topics, their types, the facts key, Guidance kinds.

docs/dataset.md is the prose version; writers (dataset.py), readers (dataset_read.py) and the
ProAssist JSON converter (proassist_json.py) all take their names from here.
"""

from __future__ import annotations

# The topics and the Guidance kinds are shared with the nodes and live in proassist_ros.constants;
# they are re-exported here because they are part of the bag schema.
from proassist_ros.constants import (
    CAPTION_TOPIC,
    COMPRESSED_TOPIC,
    IMAGE_TOPIC,
    KIND_NAMES,
    KIND_VALUES,
    NS_PER_S,
    REFERENCE_TOPIC,
    TASK_TOPIC,
    UTTERANCE_TOPIC,
)

CAMERA_TYPES = {IMAGE_TOPIC: "sensor_msgs/msg/Image",
                COMPRESSED_TOPIC: "sensor_msgs/msg/CompressedImage"}
TEXT_TYPES = {UTTERANCE_TOPIC: "std_msgs/msg/String", CAPTION_TOPIC: "std_msgs/msg/String",
              TASK_TOPIC: "proassist_ros/msg/Task", REFERENCE_TOPIC: "proassist_ros/msg/Guidance"}

FACTS_KEY = "proassist_ros.episode"        # rosbag2 custom_data key holding the facts (JSON)
FORMAT = "proassist_ros.dataset/1"
T0_NS = 1_700_000_000 * NS_PER_S           # the fixed epoch of generated bags' stamps (2023-11-14)
FRAME_ID = "head_camera"
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"  # compressed_image_transport's format string

__all__ = ["CAMERA_TYPES", "CAPTION_TOPIC", "COMPRESSED_TOPIC", "FACTS_KEY", "FORMAT", "FRAME_ID",
           "IMAGE_TOPIC", "JPEG_FORMAT", "KIND_NAMES", "KIND_VALUES", "REFERENCE_TOPIC", "T0_NS",
           "TASK_TOPIC", "TEXT_TYPES", "UTTERANCE_TOPIC"]
