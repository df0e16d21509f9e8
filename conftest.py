"""Pytest session setup: every test session runs inside a private network namespace.

Made structural here rather than per test: when pytest starts outside an isolated namespace it
re-executes itself under ``unshare -n`` (only loopback up). Where that is impossible, DDS tests
refuse to run (they fail with the reason) while ROS-free tests still run.
"""

from __future__ import annotations

import os

from proassist_ros.utils import netns

ISOLATION_ERROR: str | None = None
if os.environ.get(netns.ISOLATED_ENV) != "1" or not netns.only_loopback():
    try:
        netns.reexec_isolated(netns.python_argv())
    except RuntimeError as exc:  # no exec happened
        ISOLATION_ERROR = str(exc)
