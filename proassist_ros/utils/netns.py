"""Keep DDS traffic on this machine: run a command inside a private network namespace.

DDS discovery multicasts on every interface. Tests and demos re-execute themselves under
``unshare -n`` with only loopback up, so not one packet can leave the machine (environment.md).
A rig uses the real network and never calls this.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys

ISOLATED_ENV = "PROASSIST_NETNS"
# Why isolation failed in this process (set by the test harness), None when it did not fail.
isolation_error: str | None = None


def only_loopback() -> bool:
    """True when the current network namespace has no interface but ``lo``."""
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


def can_isolate() -> bool:
    """True when ``unshare -n`` works here (root, or user namespaces allowed)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


def dds_env(domain_id: int | None = None) -> dict[str, str]:
    """Environment variables for a DDS participant that stays on loopback."""
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.randint(1, 100))
    return env


def reexec_isolated(argv: list[str]) -> None:
    """Replace this process with ``argv`` run in a fresh network namespace (only ``lo`` up).

    Returns only when already isolated; raises RuntimeError when isolation is impossible.
    """
    if os.environ.get(ISOLATED_ENV) == "1" and only_loopback():
        return
    if not can_isolate():
        raise RuntimeError(
            "cannot create a private network namespace (`unshare -n` failed: run as root or "
            "enable unprivileged user namespaces); refusing to start DDS participants that "
            "could send traffic off this machine"
        )
    os.environ[ISOLATED_ENV] = "1"
    for key, value in dds_env().items():
        os.environ.setdefault(key, value)
    script = 'ip link set lo up && exec "$@"'
    os.execvp("unshare", ["unshare", "-n", "--", "sh", "-c", script, "sh", *argv])


def python_argv() -> list[str]:
    """The argv that restarts the current Python program (the venv's own interpreter)."""
    orig = getattr(sys, "orig_argv", None)
    if orig:
        return [sys.executable, *orig[1:]]
    return [sys.executable, *sys.argv]
