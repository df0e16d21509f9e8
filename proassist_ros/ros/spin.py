"""Run a set of nodes until SIGINT/SIGTERM: the one main loop of every proassist executable."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.logging import get_logger

from proassist_ros.ros.dds_profile import apply_default_profile
from proassist_ros.ros.nodeset import check_params_files


def spin_until_shutdown(executor: Executor, poll_s: float = 0.25) -> None:
    """Spin until the context is shut down (rclpy's SIGINT/SIGTERM handlers do that).

    Not ``rclpy.spin``: rclpy's handler shuts the context down from its own thread but does not
    always wake an executor waiting without a timeout (measured here: 4 of 20 SIGTERMs left
    ``rclpy.spin`` blocked forever; 0 of 25 with this loop), so the wait is bounded.

    An InvalidHandle from a callback task is an rclpy race, not our error: a MultiThreadedExecutor
    can run a ready subscription *event* (matched, incompatible QoS) after another callback
    destroyed that subscription (the assistant re-subscribes its camera, image_reliability auto),
    and rclpy guards subscriptions and services against that but not event handlers. Only the
    destroyed entity's event is lost, so spinning goes on (unguarded, it took a node down once in
    45 node-test runs here).
    """
    while executor.context.ok():
        try:
            executor.spin_once(timeout_sec=poll_s)
        except InvalidHandle as exc:
            get_logger("proassist.spin").info(
                f"skipped an event of an entity destroyed meanwhile (rclpy race): {exc}")


def run_nodes(prog: str, make_nodes: Callable[[], list[Any]], executor: Executor) -> int:
    """Build the nodes, autostart those that can, spin until shutdown, clean up.

    Returns 0 on a clean exit and 2 when the nodes cannot be built (e.g. a parameter outside its
    range), after printing why. ``rclpy.init`` must have been called.
    """
    nodes: list[Any] = []
    try:
        try:
            nodes = make_nodes()
        except Exception as exc:  # noqa: BLE001 - say which parameter/value is wrong, exit 2
            print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        for node in nodes:
            executor.add_node(node)
        for node in nodes:
            if hasattr(node, "autostart"):
                node.autostart()
        spin_until_shutdown(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            if hasattr(node, "stop_stream"):
                node.stop_stream()
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main_for(prog: str, make_nodes: Callable[[list[str]], list[Any]], executor: Callable[[], Executor],
             args: list[str] | None = None) -> int:
    """A whole node process's ``main``: our DDS profile (unless the user set one), the
    ``--params-file`` check (a missing or empty file is an error, exit 2, before DDS starts),
    ``rclpy.init``, then ``run_nodes``. ``make_nodes`` gets the arguments with the ROS ones in;
    it may raise ValueError for a bad argument of its own (exit 2 with the message)."""
    apply_default_profile()
    argv = list(sys.argv if args is None else args)
    try:
        check_params_files(argv)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    return run_nodes(prog, lambda: make_nodes(argv), executor())
