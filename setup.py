"""pip install of the Python package, for users without ROS (ROS users: colcon build).

The ROS interfaces (msg/, srv/) are not built by pip; `make setup` builds them with CMake.
Python dependencies are pinned in requirements.txt (the one source of truth).
"""

from setuptools import find_packages, setup

setup(
    # Not "proassist_ros": that distribution name belongs to the CMake (ament) install of the
    # interfaces, and pip would uninstall it when installing this one over it.
    name="proassist-ros-python",
    version="0.1.0",
    description="Proactive task guidance from a head-mounted camera (ProAssist on ROS 2)",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["proassist_ros", "proassist_ros.*"]),
    package_data={"proassist_ros": ["**/*.json", "**/*.txt", "**/*.xml", "**/*.safetensors", "**/*.c"]},
    entry_points={
        "console_scripts": [
            "proassist = proassist_ros.cli:main",
            "proassist_node = proassist_ros.ros.assistant_node:main",
            "proassist_tts_node = proassist_ros.ros.tts_node:main",
            "proassist_mic_node = proassist_ros.ros.mic_node:main",
            "proassist_asr_node = proassist_ros.ros.asr_node:main",
            "proassist_robot_helper = proassist_ros.examples.robot_helper:main",
        ]
    },
)
