"""One model process serving the sessions of several wearers, their frames decided together.

Why (docs/performance.md, "Many wearers"): a machine that serves N wearers should hold one copy
of the weights and read them once per round, not once per wearer. Each wearer keeps a thin node
of its own (one namespace each, its own topics, services, parameters and lifecycle); the nodes
share one :class:`ModelServer`, a child process that loads the model once and holds one engine
session per wearer. A wearer's node can be reconfigured, reset or restarted without reloading
the model or disturbing the other wearers.

Batching without waiting: the server reads every request that is already in its pipe, and the
single-frame steps of different wearers among them (the live case: each node hands over its
newest frame) run as one round of ``engine.batch.push_frames_together``. It never holds a frame
back to wait for company, so one wearer alone pays nothing; when the model is the bottleneck,
requests pile up while it works and the next round takes them all together. A round's results
equal those of each session run alone (test/test_model_server.py). Any other call (a backlog,
a user turn, a task, a reset) runs on its own, in arrival order.

ROS-free. The model and each session are built by factories named ``"module:function"``:
``model_factory(*model_args)`` once, then ``session_factory(model, *session_args)`` per wearer.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import pickle
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .session_process import ERROR, OK, READY, START_TIMEOUT_S, SessionCalls, SessionProcessError, _resolve

FRAME_CALLS = ("push_frame", "push_frames")


@dataclass
class Request:
    """One call from a wearer's node: ``op`` is open | call | close | stats | shutdown."""

    rid: int
    op: str
    key: str = ""
    name: str = ""
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def single_frame(self) -> tuple[Any, float] | None:
        """The (rgb, stamp) of a one-frame step, which may join a batched round; else None."""
        if self.op != "call" or self.name not in FRAME_CALLS or self.kwargs:
            return None
        if self.name == "push_frame":
            return (self.args[0], float(self.args[1])) if len(self.args) == 2 else None
        frames = self.args[0] if len(self.args) == 1 else None
        return tuple(frames[0]) if frames is not None and len(frames) == 1 else None


@dataclass
class ServerStats:
    """How the server's rounds went: ``batched_frames / frames`` is the share decided together."""

    rounds: int = 0
    frames: int = 0
    batched_rounds: int = 0
    batched_frames: int = 0
    largest_batch: int = 0
    sessions: int = 0


def _call(session: Any, name: str, args: tuple, kwargs: dict) -> Any:
    return getattr(session, name[4:]) if name.startswith("get:") else getattr(session, name)(*args, **kwargs)


def serve_round(model: Any, sessions: dict[str, Any], requests: Sequence[Request],
                stats: ServerStats) -> list[tuple[int, str, Any]]:
    """Answer the requests that were waiting together: ``[(rid, status, value)]``.

    One-frame steps of two or more different wearers run as one batched round; a failure there
    (say, one wearer's odd frame) sends each of them down the one-at-a-time path, so an error
    reaches only the caller it belongs to.
    """
    from proassist_ros.engine.batch import push_frames_together

    replies: dict[int, tuple[int, str, Any]] = {}
    group: list[tuple[Request, tuple[Any, float]]] = []
    seen: set[str] = set()
    for r in requests:
        frame = r.single_frame()
        if frame is not None and r.key in sessions and r.key not in seen:
            group.append((r, frame))
            seen.add(r.key)
    stats.rounds += 1
    if len(group) >= 2:
        try:
            results = push_frames_together([sessions[r.key] for r, _ in group], [f for _, f in group])
        except Exception:  # noqa: BLE001 - each frame is retried alone below, its error to its caller
            results = None
        if results is not None:
            for (r, _), res in zip(group, results, strict=True):
                replies[r.rid] = (r.rid, OK, res if r.name == "push_frame" else [res])
            stats.batched_rounds += 1
            stats.batched_frames += len(group)
            stats.largest_batch = max(stats.largest_batch, len(group))
    for r in requests:
        if r.rid in replies:
            continue
        try:
            if r.op == "open":
                if r.key in sessions:
                    raise ValueError(f"a session for {r.key!r} is already open on this model server")
                sessions[r.key] = _resolve(r.name)(model, *r.args, **r.kwargs)
                value = None
            elif r.op == "call":
                if r.key not in sessions:
                    raise SessionProcessError(f"no session for {r.key!r} on this model server")
                value = _call(sessions[r.key], r.name, r.args, r.kwargs)
            elif r.op == "close":
                value = sessions.pop(r.key, None) is not None
            elif r.op == "stats":
                value = ServerStats(**{**vars(stats), "sessions": len(sessions)})
            elif r.op == "shutdown":
                value = None
            else:
                raise ValueError(f"unknown model-server request {r.op!r}")
            replies[r.rid] = (r.rid, OK, value)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller
            replies[r.rid] = (r.rid, ERROR, exc)
    stats.frames += sum(1 for r in requests if r.op == "call" and r.name in FRAME_CALLS
                        and replies[r.rid][1] == OK)
    return [replies[r.rid] for r in requests]


def _serve(conns: list[Any], model_factory: str, model_args: tuple) -> None:
    """The child: load the model, then answer rounds of requests until shut down or orphaned.

    One pipe per slot (wearer), so every wearer's request can be waiting at once: a frame is
    ~0.2 MB, more than a pipe buffers, and behind a shared pipe the wearers would queue one by
    one. A round takes every pipe with a request ready at the moment the server is free."""
    from multiprocessing.connection import wait

    from proassist_ros.runtime.threads import prepare_process

    prepare_process()  # the OpenMP wait policy before torch loads here
    control = conns[0]
    try:
        model = _resolve(model_factory)(*model_args)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, named
        control.send((0, ERROR, f"{type(exc).__name__}: {exc}"))
        return
    control.send((0, READY, None))
    sessions: dict[str, Any] = {}
    stats = ServerStats()
    live = list(conns)
    while live:
        ready = wait(live)
        ready = list(dict.fromkeys([*ready, *wait(live, timeout=0)]))
        requests, origin = [], {}
        for conn in ready:
            try:
                r = conn.recv()
            except (EOFError, OSError):  # that end is closed: the parent is gone or done with it
                live.remove(conn)
                continue
            requests.append(r)
            origin[r.rid] = conn
        for reply in serve_round(model, sessions, requests, stats):
            conn = origin[reply[0]]
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                conn.send((reply[0], ERROR, SessionProcessError(f"result not picklable: {exc}")))
        if any(r.op == "shutdown" for r in requests):
            return


class _Slot:
    """One pipe to the model process, used by one caller at a time."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.lock, self.key = conn, threading.Lock(), ""


class ModelServer:
    """The parent's handle on the model process; started by the first :meth:`open`.

    ``model_id``: what must be equal for two wearers to share the model (spec, device, dtype,
    quantization, threads); a wearer that asks for another model gets a ValueError naming both.
    ``slots``: how many wearers may be open at once (one pipe each; slot 0 is for control).
    Thread-safe: every wearer's node calls from its own worker and service threads.
    """

    def __init__(self, model_factory: str, session_factory: str, slots: int = 16) -> None:
        self.model_factory, self.session_factory, self.slots = model_factory, session_factory, slots
        self.model_id: Hashable | None = None
        self._start_lock, self._lock = threading.Lock(), threading.Lock()
        self._ids = itertools.count(1)
        self._slots: list[_Slot] = []
        self._proc: Any = None

    # -- process --------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _start(self, model_args: tuple, model_id: Hashable) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs DDS threads
        pairs = [ctx.Pipe() for _ in range(self.slots + 1)]
        proc = ctx.Process(target=_serve, args=([c for _, c in pairs], self.model_factory, model_args),
                           name="proassist-model-server", daemon=True)
        proc.start()
        for _, child in pairs:
            child.close()
        control = pairs[0][0]
        if not control.poll(START_TIMEOUT_S):
            proc.terminate()
            raise SessionProcessError(f"the model server did not start within {START_TIMEOUT_S:g} s")
        try:
            _, status, value = control.recv()
        except EOFError:
            proc.join(5)
            raise SessionProcessError(f"the model server died (exit code {proc.exitcode})") from None
        if status != READY:
            proc.join(10)
            raise SessionProcessError(value)
        self._proc, self.model_id = proc, model_id
        self._slots = [_Slot(parent) for parent, _ in pairs]

    def request(self, slot: int, op: str, key: str = "", name: str = "", args: tuple = (),
                kwargs: dict | None = None) -> Any:
        """Send one request on ``slot`` and wait for its reply; the server's exceptions re-raised."""
        if not self.alive():
            raise SessionProcessError("the model server is not running")
        s = self._slots[slot]
        with s.lock:
            try:
                s.conn.send(Request(next(self._ids), op, key, name, tuple(args), dict(kwargs or {})))
                _, status, value = s.conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                self._proc.join(5)
                raise SessionProcessError(f"the model server died (exit code {self._proc.exitcode})") from None
        if status == ERROR:
            raise value if isinstance(value, BaseException) else SessionProcessError(str(value))
        return value

    # -- sessions -------------------------------------------------------------------------------
    def open(self, key: str, model_args: tuple, session_args: tuple, model_id: Hashable) -> ServedSession:
        """A session for wearer ``key`` on the shared model (loaded by the first call)."""
        with self._start_lock:
            if not self.alive():
                self._start(model_args, model_id)
            elif model_id != self.model_id:
                raise ValueError(f"wearer {key!r} asks for model {model_id!r}, but this process "
                                 f"serves {self.model_id!r} to its other wearers; give every wearer "
                                 "the same model, device, dtype, quantize and torch_threads")
            with self._lock:
                free = next((i for i, s in enumerate(self._slots) if i and not s.key), None)
                if free is None:
                    raise ValueError(f"this model server has {self.slots} slots, all in use")
                self._slots[free].key = key
        try:
            self.request(free, "open", key, self.session_factory, session_args)
        except BaseException:
            self._slots[free].key = ""
            raise
        return ServedSession(self, key, free)

    def release(self, slot: int) -> None:
        with self._lock:
            self._slots[slot].key = ""

    def stats(self) -> ServerStats:
        return self.request(0, "stats")

    def close(self, timeout: float = 10.0) -> None:
        """End the model process (all wearers' sessions with it)."""
        if not self.alive():
            return
        try:
            self.request(0, "shutdown")
        except SessionProcessError:
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout)


class ServedSession(SessionCalls):
    """One wearer's session on a :class:`ModelServer`: the interface of ``RemoteSession``."""

    def __init__(self, server: ModelServer, key: str, slot: int) -> None:
        self.server, self.key, self.slot = server, key, slot

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.server.request(self.slot, "call", self.key, name, args, kwargs)

    def close(self, timeout: float = 10.0) -> None:
        """Forget this wearer's session; the model stays loaded for the others (and a restart)."""
        try:
            self.server.request(self.slot, "close", self.key)
        except SessionProcessError:
            pass
        finally:
            self.server.release(self.slot)
