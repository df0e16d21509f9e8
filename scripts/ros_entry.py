#!/usr/bin/env python3
"""Entry point installed by CMake as lib/proassist_ros/<each executable of nodeset.NODES>, proassist.

`ros2 run proassist_ros proassist_node` runs this file under the executable's name; dispatch on it.
"""

import os
import sys

_TARGETS = {
    "proassist_node": "proassist_ros.ros.assistant_node",
    "proassist_tts_node": "proassist_ros.ros.tts_node",
    "proassist_robot_helper": "proassist_ros.examples.robot_helper",
    "proassist_mic_node": "proassist_ros.ros.mic_node",
    "proassist_asr_node": "proassist_ros.ros.asr_node",
    "proassist": "proassist_ros.cli",
}

if __name__ == "__main__":
    import importlib

    module = importlib.import_module(_TARGETS[os.path.basename(sys.argv[0])])
    sys.exit(module.main())
