"""Fixtures: per-test DDS domains, an rclpy context, helpers to start node processes."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from proassist_ros.utils import netns

REPO = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = REPO / "config" / "fastdds_profile.xml"
_domains = itertools.count(random.randint(1, 60))


def _require_isolation() -> None:
    if netns.isolation_error or not netns.only_loopback():
        pytest.fail(f"DDS test refused: {netns.isolation_error or 'not in a private namespace'}")


@pytest.fixture
def dds_env() -> dict[str, str]:
    """Environment for processes of one test: isolated, a domain of its own, our DDS profile."""
    _require_isolation()
    env = dict(os.environ)
    env.update(netns.dds_env(next(_domains) % 101 + 1))
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def rclpy_context(dds_env):
    """An initialised rclpy context on the test's own domain."""
    import rclpy
    from rclpy.context import Context

    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = dds_env["FASTDDS_DEFAULT_PROFILES_FILE"]
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ctx = Context()
    rclpy.init(context=ctx, domain_id=int(dds_env["ROS_DOMAIN_ID"]))
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture
def spawn(dds_env):
    """Start Python programs as separate processes; all are terminated after the test."""
    procs: list[subprocess.Popen] = []

    def _spawn(args: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, *args], env=kw.pop("env", dds_env), cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
