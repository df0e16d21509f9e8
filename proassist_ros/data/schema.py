"""The dataset bag schema in one place: topics, their types, the facts key, Guidance kinds.

docs/dataset.md is the prose version; writers (dataset.py), readers (dataset_read.py) and the
ProAssist JSON converter (proassist_json.py) all take their names from here.
"""

from __future__ import annotations

from proassist_ros.data.bags import IMAGE_TOPIC, UTTERANCE_TOPIC
from proassist_ros.data.episode import KINDS

COMPRESSED_TOPIC = "/camera/image_raw/compressed"
TASK_TOPIC = "/proassist/task"
REFERENCE_TOPIC = "/proassist/reference"
CAPTION_TOPIC = "/proassist/caption"

CAMERA_TYPES = {IMAGE_TOPIC: "sensor_msgs/msg/Image",
                COMPRESSED_TOPIC: "sensor_msgs/msg/CompressedImage"}
TEXT_TYPES = {UTTERANCE_TOPIC: "std_msgs/msg/String", CAPTION_TOPIC: "std_msgs/msg/String",
              TASK_TOPIC: "proassist_ros/msg/Task", REFERENCE_TOPIC: "proassist_ros/msg/Guidance"}

FACTS_KEY = "proassist_ros.episode"        # rosbag2 custom_data key holding the facts (JSON)
FORMAT = "proassist_ros.dataset/1"
T0_NS = 1_700_000_000 * 1_000_000_000      # the fixed epoch of generated bags' stamps (2023-11-14)
FRAME_ID = "head_camera"
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"  # compressed_image_transport's format string
NS = 1_000_000_000

# Guidance.kind of each reference kind; "other" is Guidance.KIND_OTHER (ProAssist's "other" intent).
KIND_VALUES: dict[str, int] = {**KINDS, "other": 5}
KIND_NAMES: dict[int, str] = {v: k for k, v in KIND_VALUES.items()}
