"""``proassist bringup``: the assistant and the TTS node in one process, as the launch file runs them.

``launch``/``launch_ros`` have no wheels (environment.md), so this is how the system starts where
there is no ROS install. Both ways read :mod:`proassist_ros.ros.nodeset`: the same nodes, names,
namespace, parameters file and remaps. The nodes share one MultiThreadedExecutor; the assistant's
inference runs on its own worker thread, so neither node waits for the other.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from proassist_ros.ros import nodeset


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Argument values keyed by nodeset names, and any trailing global ``--ros-args``."""
    parser = argparse.ArgumentParser(
        prog="proassist bringup",
        description="Run the assistant and the TTS node in one process (like "
                    "`ros2 launch proassist_ros proassist.launch.py`). Arguments after "
                    "--ros-args apply to both nodes.")
    for arg in nodeset.ARGUMENTS:
        parser.add_argument(f"--{arg.name.replace('_', '-')}", dest=arg.name,
                            default=arg.default, help=f"{arg.description} (default: "
                            f"{arg.default!r})")
    ros_args: list[str] = []
    if "--ros-args" in argv:
        cut = argv.index("--ros-args")
        argv, ros_args = argv[:cut], argv[cut:]
    return vars(parser.parse_args(argv)), ros_args


def create_nodes(values: dict[str, str], context: Any = None) -> list[Any]:
    """Construct every node of the set (not started) with its nodeset arguments."""
    nodes = []
    for spec in nodeset.NODES:
        module, cls = spec.factory.split(":")
        factory = getattr(importlib.import_module(module), cls)
        nodes.append(factory(namespace=values["namespace"], context=context,
                             cli_args=nodeset.ros_arguments(spec, values)))
    return nodes


def bringup_main(argv: list[str]) -> int:
    """Run the node set until SIGINT/SIGTERM; 0 on a clean exit, 2 on bad arguments."""
    values, ros_args = parse_args(argv)
    if values["params_file"] and not Path(values["params_file"]).is_file():
        print(f"proassist bringup: params file not found: {values['params_file']}",
              file=sys.stderr)
        return 2
    from proassist_ros.ros.dds_profile import apply_default_profile

    profile = apply_default_profile()  # before the first participant; a user's own one wins
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from proassist_ros.ros.spin import run_nodes

    rclpy.init(args=["proassist", *ros_args])

    def make() -> list[Any]:
        nodes = create_nodes(values)
        nodes[0].get_logger().info(f"Fast DDS profile: {profile or 'none (middleware defaults)'}")
        return nodes

    return run_nodes("proassist bringup", make, MultiThreadedExecutor(num_threads=4))


def main() -> int:
    """Entry point for ``python -m proassist_ros.ros.bringup``."""
    return bringup_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
