"""Pytest session setup: every test session runs inside a private network namespace.

Made structural here rather than per test: when pytest starts outside an isolated namespace it
re-executes itself under ``unshare -n`` (only loopback up). Where that is impossible, DDS tests
refuse to run (they fail with the reason) while ROS-free tests still run.
"""

from __future__ import annotations

import os

import pytest

from proassist_ros.utils import netns


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Re-exec under ``unshare -n`` (output capture is suspended at this point, so fds are real)."""
    if os.environ.get(netns.ISOLATED_ENV) == "1" and netns.only_loopback():
        return
    try:
        netns.reexec_isolated(netns.python_argv())
    except RuntimeError as exc:  # no exec happened
        netns.isolation_error = str(exc)
