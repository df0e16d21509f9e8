"""The robot-facing task API of the assistant node: the ``guide_task`` action and ``mark_step``.

A thin ROS layer over the engine's task API (``set_task``, ``mark_step``, ``end_task``, the task
state), like the ``set_task`` service (docs/integration.md). One rule for a goal and ``set_task``:
whichever comes last owns the session's task, and a running goal it replaces ends SUPERSEDED.
A goal ends:

* COMPLETED when the task state says completed (every step done, or the wearer said so) — never
  on a timer;
* CANCELED on a cancel request: the session's task ends (TaskState ABORTED), the model keeps its
  context;
* SUPERSEDED by a newer goal, a ``set_task`` call or a Task message;
* ABORTED when the session is reset or the node is cleaned up / shut down.

Feedback is the TaskState, sent whenever the node publishes a changed one for the goal's session.

Threads: the node's worker publishes task states (``on_state``, under the session lock); the
execute callback runs on an executor thread (a reentrant group) and only waits for its run to
end. The guide's lock is never held while calling into the session, so the two cannot deadlock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from proassist_ros.action import GuideTask
from proassist_ros.constants import GUIDE_TASK, MARK_STEP
from proassist_ros.msg import TaskState
from proassist_ros.srv import MarkStep

Result = GuideTask.Result
RESULT_KEEP_S = 60  # a finished goal's result stays available this long (rclpy's default is 10)
_NAMES = {Result.STATUS_COMPLETED: "completed", Result.STATUS_ABORTED: "aborted",
          Result.STATUS_CANCELED: "canceled", Result.STATUS_SUPERSEDED: "superseded"}


class TaskHost(Protocol):
    """What the guide needs from the assistant node."""

    def set_task_now(self, goal: str, knowledge: str, steps: tuple[str, ...], reset: bool,
                     by_goal: bool = False) -> str: ...
    stream: Any  # runtime/stream.py FrameStream: with_session(fn) runs fn under the session lock
    def publish_task_state(self, state: Any, force: bool = False) -> TaskState | None: ...


@dataclass
class _Run:
    """One accepted goal while it runs."""

    handle: ServerGoalHandle
    session_id: str = ""
    guidance_count: int = 0
    status: int | None = None       # set once, when the run ends
    message: str = ""
    last: TaskState | None = None   # the newest task state of its session
    ended: threading.Event = field(default_factory=threading.Event)     # wakes the execute thread
    finished: threading.Event = field(default_factory=threading.Event)  # its result is built

    def end(self, status: int, message: str) -> None:
        if self.status is None:
            self.status, self.message = status, message
        self.ended.set()


class GuideTaskServer:
    """The ``guide_task`` action server and the ``mark_step`` service of one assistant node."""

    def __init__(self, node: Node, host: TaskHost, control_group: Any) -> None:
        self._node, self._host = node, host
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._epoch = 0      # bumped by every set_task / Task message, so a goal starting
        self._closed = False  # concurrently with one notices it lost
        self._server = ActionServer(
            node, GuideTask, GUIDE_TASK, self._execute, callback_group=ReentrantCallbackGroup(),
            goal_callback=self._on_goal, handle_accepted_callback=lambda h: h.execute(),
            cancel_callback=self._on_cancel, result_timeout=RESULT_KEEP_S)
        self._mark = node.create_service(MarkStep, MARK_STEP, self._on_mark_step,
                                         callback_group=control_group)

    # ---- hooks called by the node -------------------------------------------------------------
    def on_state(self, msg: TaskState) -> None:
        """A changed task state was published: feedback, and the end of the run it decides."""
        with self._lock:
            run = self._run
        if run is not None and run.session_id:
            self._follow(run, msg)

    def on_guidance(self) -> None:
        with self._lock:
            if self._run is not None:
                self._run.guidance_count += 1

    def supersede(self, by: str) -> None:
        """``set_task`` or a Task message replaced the session's task."""
        with self._lock:
            self._epoch += 1
            run = self._run
        if run is not None:
            run.end(Result.STATUS_SUPERSEDED, f"superseded by {by}")

    def close(self) -> None:
        """Cleanup / shutdown: end the running goal (aborted), then drop the server."""
        with self._lock:
            self._closed, run = True, self._run
        if run is not None:
            run.end(Result.STATUS_ABORTED, "the assistant was cleaned up or shut down")
            run.finished.wait(5.0)
        self._node.destroy_service(self._mark)
        self._server.destroy()

    # ---- action -------------------------------------------------------------------------------
    def _on_goal(self, goal: GuideTask.Goal) -> GoalResponse:
        if self._closed or not (goal.goal.strip() or goal.knowledge.strip() or any(goal.steps)):
            self._node.get_logger().warning("guide_task goal rejected: no goal, knowledge or steps"
                                            if not self._closed else "guide_task goal rejected: closing")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        with self._lock:
            run = self._run
        if run is not None and run.handle.goal_id.uuid.tobytes() == handle.goal_id.uuid.tobytes():
            run.ended.set()  # the execute thread sees is_cancel_requested
        return CancelResponse.ACCEPT

    def _execute(self, handle: ServerGoalHandle) -> GuideTask.Result:
        req, run = handle.request, _Run(handle)
        with self._lock:
            previous, self._run, epoch = self._run, None, self._epoch
        if previous is not None:
            previous.end(Result.STATUS_SUPERSEDED, "superseded by a new guide_task goal")
        try:
            run.session_id = self._host.set_task_now(req.goal, req.knowledge, tuple(req.steps),
                                                     req.reset_context, by_goal=True)
        except Exception as exc:  # noqa: BLE001 - the engine validates; the robot gets why
            run.end(Result.STATUS_ABORTED, f"task refused: {type(exc).__name__}: {exc}")
            return self._finish(run)
        with self._lock:
            lost = self._epoch != epoch or self._closed or (self._run is not None)
            if not lost:
                self._run = run
        if lost:
            run.end(Result.STATUS_SUPERSEDED, "superseded while starting")
            return self._finish(run)
        self._node.get_logger().info(f"guide_task: guiding {req.goal!r} (session {run.session_id})")
        # The state right after set_task (a frame may already have moved it): first feedback.
        state = self._host.stream.with_session(lambda s: self._host.publish_task_state(s.task_state()))
        if state is not None:
            self._follow(run, state)
        while run.status is None and not handle.is_cancel_requested:
            run.ended.wait(0.5)  # set by every end and cancel; the timeout only bounds a race
            run.ended.clear()    # with the cancel callback, which wakes us before it accepts
        if run.status is None:  # cancel requested: the session's task ends, the context stays
            try:
                self._host.stream.with_session(lambda s: self._host.publish_task_state(
                    s.end_task(TaskState.STATUS_ABORTED), force=True))
            except RuntimeError:  # cleaned up meanwhile: nothing left to end
                pass
            run.end(Result.STATUS_CANCELED, "canceled")
        with self._lock:
            if self._run is run:
                self._run = None
        return self._finish(run)

    def _follow(self, run: _Run, msg: TaskState) -> None:
        """Feedback for the run's session; its end when the state says so."""
        if msg.session_id != run.session_id:
            run.end(Result.STATUS_ABORTED, f"the session was reset (now {msg.session_id})")
            return
        if run.status is not None:
            return
        run.last = msg
        run.handle.publish_feedback(GuideTask.Feedback(state=msg))
        if msg.status == TaskState.STATUS_COMPLETED:
            run.end(Result.STATUS_COMPLETED, "the task state says completed")

    def _finish(self, run: _Run) -> GuideTask.Result:
        """Move the goal handle to its terminal state and build the result."""
        status = run.status if run.status is not None else Result.STATUS_ABORTED
        {Result.STATUS_COMPLETED: run.handle.succeed, Result.STATUS_CANCELED: run.handle.canceled}.get(
            status, run.handle.abort)()
        last = run.last or TaskState()
        self._node.get_logger().info(f"guide_task: {_NAMES[status]} ({run.message})")
        run.finished.set()
        return GuideTask.Result(
            status=status, message=run.message, session_id=run.session_id,
            progress_summary=last.progress_summary, completed_steps=list(last.completed_steps),
            steps_total=len(last.steps), guidance_count=run.guidance_count, elapsed_s=last.elapsed_s)

    # ---- mark_step ----------------------------------------------------------------------------
    def _on_mark_step(self, req: MarkStep.Request, resp: MarkStep.Response) -> MarkStep.Response:
        def mark(session: Any) -> TaskState | None:
            return self._host.publish_task_state(
                session.mark_step(req.step_index, req.done, req.source), force=True)

        try:
            state = self._host.stream.with_session(mark)
        except (ValueError, RuntimeError) as exc:  # no such step / not configured
            resp.success, resp.message = False, str(exc)
            return resp
        resp.success, resp.state = True, state or TaskState()
        resp.message = (f"step {req.step_index} marked {'done' if req.done else 'not done'}"
                        + (f" by {req.source}" if req.source else ""))
        return resp
