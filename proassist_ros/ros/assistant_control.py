"""The assistant node's control surface: task, reset, enable and run-time parameters.

A mixin of :class:`~proassist_ros.ros.assistant_node.AssistantNode`, kept apart so the node module
stays about the stream. The ``set_task`` service and the ``task`` topic (proassist_ros/Task, for
publishers that latch a task or a dataset bag that carries one) share one code path, so they
cannot drift. Every session call goes through ``FrameStream.with_session`` (the session lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind
from std_srvs.srv import SetBool, Trigger

from proassist_ros.msg import Task
from proassist_ros.ros import assistant_config as params
from proassist_ros.srv import SetTask

if TYPE_CHECKING:
    from proassist_ros.ros.guide_task import GuideTaskServer
    from proassist_ros.runtime.stream import FrameStream


class AssistantControl:
    """Services, the task topic and parameter callbacks; needs ``stream``, ``cfg``, ``_guide``,
    ``publish_task_state`` and the Node API (``get_logger``) from the class it is mixed into."""

    stream: FrameStream
    cfg: params.AssistantConfig | None
    _guide: GuideTaskServer | None

    def set_task_now(self, goal: str, knowledge: str, steps: tuple[str, ...], reset: bool,
                     by_goal: bool = False) -> str:
        """The set_task service, the task topic and a GuideTask goal (``by_goal``): give the
        session its task; its session id. A running goal is superseded (ros/guide_task.py)."""
        def set_task(session: Any) -> str:
            session.set_task(goal, knowledge=knowledge, steps=steps, reset_context=reset)
            self.publish_task_state(session.task_state(), force=True)  # under the session lock:
            return session.session_id                                   # never overtaken by a frame

        session_id = self.stream.with_session(set_task)
        if reset:
            self.stream.reset_grid()
        if not by_goal and self._guide is not None:
            self._guide.supersede("a set_task call or a Task message")
        return session_id

    def _on_set_task(self, req: SetTask.Request, resp: SetTask.Response) -> SetTask.Response:
        try:
            resp.session_id = self.set_task_now(req.goal, req.knowledge, tuple(req.steps),
                                             req.reset_context)
        except Exception as exc:  # noqa: BLE001 - the engine validates; the caller gets why
            resp.success, resp.message = False, f"{type(exc).__name__}: {exc}"
            return resp
        resp.success, resp.message = True, f"task set: {req.goal!r}"
        return resp

    def _on_task(self, msg: Task) -> None:
        """``task`` topic: exactly what set_task does (step_groups are not used by the node)."""
        name = msg.task_id or msg.goal
        try:
            session_id = self.set_task_now(msg.goal, msg.knowledge, tuple(msg.steps),
                                        msg.reset_context)
        except Exception as exc:  # noqa: BLE001 - a bad task must not kill the node; say why
            self.get_logger().error(f"task {name!r} refused: {type(exc).__name__}: {exc}")
            return
        self.get_logger().info(f"task {name!r} set from the task topic (session {session_id})")

    def _on_task_qos(self, info: Any) -> None:
        """A Task publisher that cannot match (usually a volatile one): its tasks would be lost."""
        try:
            policy = QoSPolicyKind(int(info.last_policy_kind)).name
        except ValueError:
            policy = str(info.last_policy_kind)
        self.get_logger().warning(f"a Task publisher offers QoS incompatible with ours ({policy}): "
                                  "publish Task reliable + transient local (Task.msg)")

    def _on_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        def reset(session: Any) -> str:
            session.reset()
            self.publish_task_state(session.task_state(), force=True)
            return session.session_id

        try:
            resp.success, resp.message = True, f"session reset: {self.stream.with_session(reset)}"
        except RuntimeError as exc:  # not configured
            resp.success, resp.message = False, str(exc)
        self.stream.reset_grid()
        return resp

    def _on_enable(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        self.stream.enabled = bool(req.data)
        if not req.data:
            self.stream.discard_pending()
        try:  # TaskState says PAUSED while disabled
            self.stream.with_session(lambda session: self.publish_task_state(session.task_state()))
        except RuntimeError:
            pass  # not configured: nothing to publish
        resp.success, resp.message = True, "enabled" if req.data else "disabled"
        return resp

    def _validate_params(self, changed: list[Parameter]) -> SetParametersResult:
        for p in changed:
            problem = params.change_problem(p.name, p.value, self.cfg)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _apply_params(self, changed: list[Parameter]) -> None:
        changes = {p.name: p.value for p in changed if p.name in params.RUNTIME_PARAMS}
        if self.cfg is None or not changes:
            return
        self.cfg = self.cfg.with_changes(changes)
        if "fps" in changes:
            self.stream.set_fps(self.cfg.fps)
        policies = {k: v for k, v in changes.items() if k in params.ENGINE_POLICIES}
        if "theta" in policies:  # negative: back to the model's own θ
            from proassist_ros.engine.config import model_settings

            policies.update(model_settings(policies["theta"], None, self._model_defaults))
        if policies:
            self.stream.with_session(lambda s: s.update_config(**policies))
