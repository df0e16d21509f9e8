"""Shared test helpers: waiting on conditions with deadlines (never fixed sleeps), spinning a node
until something holds, and collecting a spawned process's output for failure messages.

Scripts in this folder (camera_publisher.py, interface_peer.py, ...) are run as separate
processes; this module is imported by tests (``from helpers import wait_until``).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _poll(cond: Callable[[], Any], timeout: float, what: str, step: Callable[[], None],
          on_timeout: Callable[[], str] | None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}{extra}")
        step()


def wait_until(cond: Callable[[], Any], timeout: float, what: str = "condition",
               poll_s: float = 0.02, on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll ``cond`` until it returns something truthy (returned); AssertionError at the deadline.

    For state outside our process (files, another process's output). ``on_timeout`` adds
    context (e.g. a process's log) to the failure message.
    """
    return _poll(cond, timeout, what, lambda: time.sleep(poll_s), on_timeout)


def spin_until(executor: Any, cond: Callable[[], Any], timeout: float,
               what: str = "condition", on_timeout: Callable[[], str] | None = None) -> Any:
    """Spin an rclpy executor until ``cond()`` is truthy; the spin itself is the wait."""
    return _poll(cond, timeout, what, lambda: executor.spin_once(timeout_sec=0.05), on_timeout)


class OutputDrain:
    """Reads a spawned process's stdout in a thread, so a full pipe never blocks the process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self, last: int = 40) -> str:
        with self._lock:
            return "\n".join(self.lines[-last:])

    def has(self, needle: str) -> bool:
        with self._lock:
            return any(needle in line for line in self.lines)

    def count(self, needle: str) -> int:
        """Lines so far that contain ``needle``."""
        with self._lock:
            return sum(needle in line for line in self.lines)

    def snapshot(self) -> list[str]:
        """A copy of the lines so far (safe to index while the reader appends)."""
        with self._lock:
            return list(self.lines)


def read_jsonl(path: str | Path) -> list[dict]:
    """Complete lines of a JSONL file that may still be growing ([] if it does not exist)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def stop_cleanly(proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    """SIGINT ``proc`` and require a clean exit (status 0) within ``timeout``; kill it otherwise."""
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{what} did not exit on SIGINT") from None
    assert proc.returncode == 0, out
