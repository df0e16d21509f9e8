"""Launch the proassist node set: ``ros2 launch proassist_ros proassist.launch.py [arg:=value ...]``.

Arguments, nodes, parameters and remaps come from ``proassist_ros.ros.nodeset``, the same data
``proassist bringup`` uses (no wheel of ``launch`` exists, so that command is the way to start
the system without a ROS install). Arguments (``ros2 launch ... --show-args``):
params_file, namespace, use_sim_time, autostart, image_topic, guidance_topic,
user_utterance_topic, task_state_topic, example (robot_helper: the example robot-side node),
speech (true: the microphone and ASR nodes, docs/speech.md), wav (with speech: the microphone
plays this WAV file instead of a sound card), wearers.

The assistant is a LifecycleNode that configures and activates itself (its ``autostart``
parameter, default true), so no lifecycle manager is needed; with ``autostart:=false`` drive it
with ``ros2 lifecycle set /proassist/assistant configure`` / ``activate``.

Fast DDS: unless ``FASTDDS_DEFAULT_PROFILES_FILE`` is already set, the shipped
``config/fastdds_profile.xml`` is used (large shared-memory segment and socket buffers: without
it a best-effort subscriber loses most 640x480+ camera frames).
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription
from proassist_ros.ros import nodeset

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def _nodes(context, *args, **kwargs):
    """Build the node actions from the nodeset once the arguments are known."""
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in nodeset.ARGUMENTS}
    share = get_package_share_directory(nodeset.PACKAGE)
    params_file = values["params_file"] or os.path.join(share, str(nodeset.PARAMS_FILE))
    actions = []
    for spec in nodeset.nodes_for(values):
        common = dict(package=nodeset.PACKAGE, executable=spec.executable, output="screen",
                      emulate_tty=True, parameters=[params_file, nodeset.node_parameters(spec, values)],
                      remappings=nodeset.node_remaps(spec, values))
        if values["wearers"]:  # one process, one assistant per wearer, each in its own namespace
            actions.append(Node(arguments=nodeset.node_arguments(spec, values), **common))
            continue
        kind = LifecycleNode if spec.lifecycle else Node
        actions.append(kind(name=spec.name, namespace=values["namespace"],
                            arguments=nodeset.node_arguments(spec, values), **common))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Declare the nodeset's arguments, the DDS profile fallback, then the nodes."""
    share = get_package_share_directory(nodeset.PACKAGE)
    actions = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
               for a in nodeset.ARGUMENTS]
    if not os.environ.get(PROFILE_ENV):
        actions.append(SetEnvironmentVariable(
            PROFILE_ENV, os.path.join(share, "config", "fastdds_profile.xml")))
    actions.append(OpaqueFunction(function=_nodes))
    return LaunchDescription(actions)
