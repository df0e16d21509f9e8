"""The assistant: a lifecycle node that watches the camera and publishes spoken guidance.

configure reads the parameters into an :class:`AssistantConfig` and loads the model (a bad
spec fails the transition with a message naming it); activate creates the subscriptions and the
one inference thread; deactivate stops them (the model stays loaded); cleanup frees the model.

Frames are kept by header stamp at ``fps`` (:class:`FpsGate`), handed to the worker through a
latest-wins mailbox and decoded there, so executor callbacks stay cheap and the node never lags
the camera. Outputs copy the triggering frame's stamp, which makes replays joinable frame-exactly.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn as Ret
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger

from proassist_ros.msg import AssistantStats, Guidance, TaskState
from proassist_ros.ros import assistant_config as params
from proassist_ros.ros import conversions as conv
from proassist_ros.ros.dds_profile import apply_default_profile
from proassist_ros.ros.images import ImageDecodeError, image_to_rgb
from proassist_ros.ros.spin import run_nodes
from proassist_ros.runtime.health import assess
from proassist_ros.runtime.stream import FrameStream, Output
from proassist_ros.srv import SetTask

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class AssistantNode(LifecycleNode):
    """``/proassist/assistant``: camera frames in; Guidance, TaskState, stats, diagnostics out."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("namespace", "proassist")
        super().__init__("assistant", **kwargs)
        params.declare_parameters(self)
        self.add_on_set_parameters_callback(self._validate_params)
        self.add_post_set_parameters_callback(self._apply_params)
        self.cfg: params.AssistantConfig | None = None
        self.stream: FrameStream[Image | CompressedImage] = FrameStream(
            image_to_rgb, ImageDecodeError, self._publish_output, self._on_decode_error,
            self._on_worker_error, fps=params.SPECS["fps"].default)
        self._active = False
        self._entities: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._camera_topic = ""  # resolved camera topic, for log messages
        self._state_msg: TaskState | None = None
        self._state_key: tuple | None = None
        self._frame_header: Header | None = None
        self._prev_snap, self._qos_event_at = None, float("-inf")
        # Camera callbacks never wait behind control; control (lifecycle services included, the
        # default group) is serialised, so a cleanup never races the timer or a service.
        self._io_group = MutuallyExclusiveCallbackGroup()
        self._ctl_group = self.default_callback_group

    # ---- lifecycle ---------------------------------------------------------------------------
    def autostart(self) -> bool:
        """Configure and activate when the ``autostart`` parameter says so; True when active."""
        if not self.get_parameter("autostart").value:
            return False
        return self.trigger_configure() == Ret.SUCCESS and self.trigger_activate() == Ret.SUCCESS

    def on_configure(self, state: LifecycleState) -> Ret:
        """Read and validate the parameters, load the model, create the session and outputs."""
        try:
            cfg = params.read_config(self)
            knowledge = Path(cfg.knowledge_file).read_text() if cfg.knowledge_file else ""
            engine_cfg = cfg.engine_config()
        except (ValueError, OSError) as exc:
            return self._fail(f"invalid configuration: {exc}")
        try:
            session = params.open_session(cfg, engine_cfg, knowledge)
        except Exception as exc:  # noqa: BLE001 - any loader error fails the transition, named
            return self._fail(f"cannot load model {cfg.model!r}: {type(exc).__name__}: {exc}")
        self.cfg = cfg
        self.stream.attach(session, cfg.fps, cfg.catchup_depth)
        self._state_msg = self._state_key = self._frame_header = None
        self._entities = {
            "guidance": self.create_lifecycle_publisher(Guidance, "guidance", RELIABLE),
            "task_state": self.create_lifecycle_publisher(TaskState, "task_state", LATCHED),
            "stats": self.create_lifecycle_publisher(AssistantStats, "stats", 10),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
            "set_task": self.create_service(SetTask, "set_task", self._on_set_task,
                                            callback_group=self._ctl_group),
            "reset": self.create_service(Trigger, "reset", self._on_reset,
                                         callback_group=self._ctl_group),
            "enable": self.create_service(SetBool, "enable", self._on_enable,
                                          callback_group=self._ctl_group),
            "tick": self.create_timer(1.0, self._tick, callback_group=self._ctl_group),
        }
        self.get_logger().info(f"configured: model {cfg.model!r}, {cfg.fps:g} fps, θ={cfg.theta:g}")
        return Ret.SUCCESS

    def on_activate(self, state: LifecycleState) -> Ret:
        """Subscribe to the camera and user utterances; start the inference thread."""
        cfg = self.cfg
        reliability = (ReliabilityPolicy.RELIABLE if cfg.image_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(depth=cfg.image_depth, reliability=reliability)
        msg_type = CompressedImage if cfg.transport == "compressed" else Image
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos,
                                            matched=self._on_camera_matched)
        self._subs = [
            self.create_subscription(msg_type, cfg.subscribed_image_topic, self._on_image, qos,
                                     event_callbacks=events, callback_group=self._io_group),
            self.create_subscription(String, "user_utterance", self._on_utterance, 10,
                                     callback_group=self._ctl_group),
        ]
        self.stream.start()
        self._active = True
        result = super().on_activate(state)
        self.stream.with_session(lambda s: self._publish_state(s.task_state(), force=True))
        self._camera_topic = self._subs[0].topic_name
        self.get_logger().info(f"active: {self._camera_topic} ({cfg.image_reliability}, "
                               f"depth {cfg.image_depth})")
        return result

    def on_deactivate(self, state: LifecycleState) -> Ret:
        """Stop the subscriptions and the inference thread; the model stays loaded."""
        self.stop_stream()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> Ret:
        """Destroy the outputs and free the model (and GPU memory)."""
        self._release()
        return Ret.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> Ret:
        """Stop everything from whatever state the node is in."""
        self.stop_stream()
        self._release()
        return Ret.SUCCESS

    def on_error(self, state: LifecycleState) -> Ret:
        """Recover to unconfigured after a failed transition."""
        return self.on_shutdown(state)

    def _fail(self, reason: str) -> Ret:
        self.get_logger().error(f"configure failed: {reason}")
        return Ret.FAILURE

    def stop_stream(self) -> None:
        """Destroy the subscriptions and stop the worker (after its current frame)."""
        self._active = False
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if not self.stream.stop():
            self.get_logger().warning("inference thread still busy; it ends after this frame")

    def _release(self) -> None:
        destroyers = ((LifecyclePublisher, self.destroy_lifecycle_publisher),
                      (Publisher, self.destroy_publisher), (Timer, self.destroy_timer))
        for entity in self._entities.values():
            next((d for t, d in destroyers if isinstance(entity, t)), self.destroy_service)(entity)
        self._entities = {}
        self.stream.detach()
        self.cfg = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ---- stream ------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        stamp_ns = conv.time_to_ns(msg.header.stamp)
        if stamp_ns == 0:  # an unstamped driver: fall back to receipt time (node clock)
            stamp_ns = self.get_clock().now().nanoseconds
            self.get_logger().warning("camera frames have zero stamps; using receipt time",
                                      throttle_duration_sec=30.0)
        self.stream.offer(msg, stamp_ns)

    def _on_utterance(self, msg: String) -> None:
        if msg.data.strip():
            self.stream.add_utterance(msg.data)

    def _on_incompatible_qos(self, info: Any) -> None:
        self.stream.counters.add(incompatible_qos_events=info.total_count_change)
        self._qos_event_at = time.monotonic()
        try:
            policy = QoSPolicyKind(int(info.last_policy_kind)).name
        except ValueError:
            policy = str(info.last_policy_kind)
        self.get_logger().warning(
            f"a publisher on {self._camera_topic} offers QoS incompatible with ours ({policy}); "
            "set image_reliability (and image_depth) to match the camera")

    def _on_camera_matched(self, info: Any) -> None:
        """Log camera publishers coming and going: 'no frames' is the usual support question."""
        verb = "matched" if info.current_count_change > 0 else "left"
        self.get_logger().info(f"camera publisher {verb} on {self._camera_topic} "
                               f"({info.current_count} now)")

    def _on_decode_error(self, exc: Exception) -> None:
        self.get_logger().warning(f"dropping undecodable frames (counted in stats): {exc}",
                                  throttle_duration_sec=10.0)

    def _on_worker_error(self, exc: BaseException) -> None:
        self.get_logger().error(f"frame processing failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=10.0)

    def _publish_output(self, out: Output) -> None:
        """Worker thread: Guidance (when the engine spoke) and TaskState (when it changed)."""
        cfg = self.cfg
        header = Header(stamp=conv.ns_to_time(out.job.stamp_ns),
                        frame_id=(cfg.frame_id if cfg else "") or out.job.payload.header.frame_id)
        self._frame_header = header
        if out.result.spoke and "guidance" in self._entities:
            self._entities["guidance"].publish(
                conv.guidance_msg(out.result, header, out.session_id, out.latency_s()))
        self._publish_state(out.state)

    # ---- outputs -----------------------------------------------------------------------------
    def _publish_state(self, state: Any, force: bool = False) -> None:
        if not self.stream.enabled and state.status == TaskState.STATUS_ACTIVE:
            state = dataclasses.replace(state, status=TaskState.STATUS_PAUSED)  # /enable false
        key = conv.task_state_key(state)
        if key == self._state_key and not force:
            return
        header = self._frame_header or Header(stamp=self.get_clock().now().to_msg(),
                                              frame_id=self.cfg.frame_id if self.cfg else "")
        self._state_key, self._state_msg = key, conv.task_state_msg(state, header)
        if "task_state" in self._entities:
            self._entities["task_state"].publish(self._state_msg)

    def _tick(self) -> None:
        """1 Hz: stats, the TaskState heartbeat and /diagnostics."""
        snap = self.stream.snapshot(self._active, time.monotonic() - self._qos_event_at)
        now, out = self.get_clock().now().to_msg(), self._entities
        if not out:
            return
        out["stats"].publish(conv.stats_msg(snap, Header(stamp=now)))
        if self._state_msg is not None:
            out["task_state"].publish(self._state_msg)
        level, message = assess(snap, self._prev_snap)
        self._prev_snap = snap
        out["diagnostics"].publish(conv.diagnostics_msg(
            snap, level, message, now, f"{self.get_fully_qualified_name()}: stream",
            self.cfg.device if self.cfg else ""))

    # ---- control -----------------------------------------------------------------------------
    def _on_set_task(self, req: SetTask.Request, resp: SetTask.Response) -> SetTask.Response:
        def set_task(session: Any) -> str:
            session.set_task(req.goal, knowledge=req.knowledge, steps=tuple(req.steps),
                             reset_context=req.reset_context)
            self._publish_state(session.task_state(), force=True)  # under the session lock:
            return session.session_id                               # never overtaken by a frame

        try:
            resp.session_id = self.stream.with_session(set_task)
        except Exception as exc:  # noqa: BLE001 - the engine validates; the caller gets why
            resp.success, resp.message = False, f"{type(exc).__name__}: {exc}"
            return resp
        if req.reset_context:
            self.stream.reset_grid()
        resp.success, resp.message = True, f"task set: {req.goal!r}"
        return resp

    def _on_reset(self, req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        def reset(session: Any) -> str:
            session.reset()
            self._publish_state(session.task_state(), force=True)
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
            self.stream.with_session(lambda session: self._publish_state(session.task_state()))
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
        if policies:
            self.stream.with_session(lambda s: s.update_config(**policies))


def main(argv: list[str] | None = None) -> int:
    """``proassist_node [--ros-args ...]``: run the assistant until SIGINT/SIGTERM."""
    profile = apply_default_profile()  # before the first participant; a user's own one wins
    rclpy.init(args=argv if argv is not None else sys.argv)

    def make() -> list[AssistantNode]:
        node = AssistantNode()
        node.get_logger().info(f"Fast DDS profile: {profile or 'none (middleware defaults)'}")
        return [node]

    return run_nodes("proassist_node", make, MultiThreadedExecutor(num_threads=4))


if __name__ == "__main__":
    sys.exit(main())
