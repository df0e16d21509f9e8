"""An engine session in a process of its own, behind the session's own interface (ROS-free).

Why (docs/performance.md): in the node's process the model's worker thread shares one GIL with
the rclpy executor. PyTorch releases the GIL for every op and must take it back after it, ~200
times per generated token; while executor callbacks (``/clock`` at 40 Hz under sim time, camera
frames, timers, parameter events) hold it, every re-take waits. Measured on 2 cores: a token of
the embedded model took 82 ms alone and 124 ms next to a thread that runs Python a third of the
time; the demo's slowest reply took 3.3 s in the node against about 2 s offline. In a process of
its own the model has its own GIL and the node keeps only light work.

:class:`RemoteSession` starts the process (``spawn``: never ``fork`` a process that runs DDS
threads), builds the session there with a factory named ``"module:function"``, and forwards each
call over a pipe. Results and exceptions come back pickled, so callers see the same values and
the same exception types as with an in-process session. Calls are serialised (one pipe); the
stream already serialises every use of the session under its lock.

The process ends with :meth:`close`, when the parent dies (the pipe closes), or at interpreter exit.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import pickle
import threading
from collections.abc import Callable
from typing import Any

READY, OK, ERROR = "ready", "ok", "error"
START_TIMEOUT_S = 600.0  # loading and warming a large model on a slow machine


class SessionProcessError(RuntimeError):
    """The session process failed to start or died."""


def _resolve(factory: str) -> Callable[..., Any]:
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(conn: Any, factory: str, args: tuple, kwargs: dict) -> None:
    """The child: build the session, then answer (name, args, kwargs) calls until closed."""
    from proassist_ros.runtime.threads import prepare_process

    prepare_process()  # the OpenMP wait policy before torch loads here
    try:
        session = _resolve(factory)(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, named
        conn.send((ERROR, f"{type(exc).__name__}: {exc}"))
        return
    conn.send((READY, None))
    while True:
        try:
            name, call_args, call_kwargs = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if name == "close":
            conn.send((OK, None))
            return
        try:
            if name.startswith("get:"):
                value = getattr(session, name[4:])
            else:
                value = getattr(session, name)(*call_args, **call_kwargs)
            reply = (OK, value)
        except Exception as exc:  # noqa: BLE001 - re-raised in the parent
            reply = (ERROR, exc)
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send((ERROR, SessionProcessError(f"{name}: result not picklable: {exc}")))


class SessionCalls:
    """The session interface used by ``FrameStream`` and the node's services, forwarded by
    ``call(name, ...)``: one home for :class:`RemoteSession` and the model server's sessions."""

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def push_frames(self, frames: list) -> list:
        return self.call("push_frames", frames)

    def push_frame(self, rgb: Any, stamp_s: float) -> Any:
        return self.call("push_frame", rgb, stamp_s)

    def push_user_utterance(self, text: str, stamp_s: float) -> None:
        self.call("push_user_utterance", text, stamp_s)

    def set_task(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("set_task", *args, **kwargs)

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("reset", *args, **kwargs)

    def mark_step(self, index: int, done: bool, source: str = "") -> Any:
        return self.call("mark_step", index, done, source)

    def end_task(self, status: int) -> Any:
        return self.call("end_task", status)

    def update_config(self, **changes: Any) -> Any:
        return self.call("update_config", **changes)

    def task_state(self) -> Any:
        return self.call("task_state")

    def snapshot(self) -> dict:
        return self.call("snapshot")

    def resume(self, snap: dict) -> str:
        return self.call("resume", snap)

    @property
    def session_id(self) -> str:
        return self.call("get:session_id")

    @property
    def context_tokens(self) -> int:
        return self.call("get:context_tokens")

    @property
    def config(self) -> Any:
        return self.call("get:config")


class RemoteSession(SessionCalls):
    """An ``AssistantSession`` (or any object) built by ``factory`` in a child process."""

    def __init__(self, factory: str, *args: Any, **kwargs: Any) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._lock = threading.Lock()
        self._proc = ctx.Process(target=_serve, args=(child, factory, args, kwargs),
                                 name="proassist-model", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(START_TIMEOUT_S):
            self.close()
            raise SessionProcessError(f"the model process did not start within {START_TIMEOUT_S:g} s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise SessionProcessError(self._died()) from None
        if status != READY:
            self._proc.join(10)
            raise SessionProcessError(value)

    @property
    def pid(self) -> int | None:
        """The model process's id."""
        return self._proc.pid

    def _died(self) -> str:
        self._proc.join(5)
        return f"the model process died (exit code {self._proc.exitcode})"

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``session.name(*args, **kwargs)`` in the model process; its exceptions re-raised here."""
        with self._lock:
            try:
                self._conn.send((name, args, kwargs))
                status, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                raise SessionProcessError(self._died()) from None
        if status == ERROR:
            raise value
        return value

    def close(self, timeout: float = 10.0) -> None:
        """End the model process (its memory, GPU memory included, goes with it)."""
        if not self._proc.is_alive():
            return
        with self._lock:
            try:
                self._conn.send(("close", (), {}))
                if self._conn.poll(timeout):
                    self._conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout)
        self._conn.close()
