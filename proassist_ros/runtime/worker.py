"""One inference thread fed by a :class:`FrameBacklog` (ROS-free).

Inference never runs in executor callbacks (rclpy executors starve timers, services and
``/clock`` behind a long callback: rclpy#792, t-top PR#112). Callbacks only drop the newest kept
frame into the backlog; this thread takes what waits, processes it, and goes back for more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from proassist_ros.runtime.sampling import FrameBacklog

T = TypeVar("T")


class MailboxWorker(Generic[T]):
    """Run ``handle(item)`` for each item taken from ``mailbox`` on one daemon thread."""

    def __init__(self, mailbox: FrameBacklog, handle: Callable[[T], None],
                 on_error: Callable[[BaseException], None], name: str = "proassist-worker") -> None:
        self._mailbox = mailbox
        self._handle = handle
        self._on_error = on_error
        self._name = name
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        if self.running:
            return
        self._stop.clear()
        self._mailbox.reopen()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the current item; False when the thread did not end within ``timeout``."""
        self._stop.set()
        self._mailbox.close()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._mailbox.get(timeout=0.5)
            if item is None or self._stop.is_set():
                continue
            try:
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not kill the stream
                self._on_error(exc)
