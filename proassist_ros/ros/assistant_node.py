"""The assistant: a lifecycle node that watches the camera and publishes spoken guidance.

configure reads the parameters into an :class:`AssistantConfig` and loads the model (a bad
spec fails the transition with a message naming it); activate creates the subscriptions and the
one inference thread; deactivate stops them (the model stays loaded); cleanup frees the model.

Frames are kept by header stamp at ``fps`` (:class:`FpsGate`), handed to the worker through the
bounded catch-up backlog and decoded there, so executor callbacks stay cheap and the node never
lags the camera. Outputs copy the triggering frame's stamp, which makes replays joinable
frame-exactly. The camera subscription's reliability follows ``image_reliability``; ``auto``
matches what the camera's publishers offer (:mod:`proassist_ros.ros.qos_adapt`). Services, the
``task`` topic and parameter changes live in :mod:`proassist_ros.ros.assistant_control`; outputs
and camera events in :mod:`proassist_ros.ros.assistant_outputs`; the ``guide_task`` action and
``mark_step`` (for robots) in :mod:`proassist_ros.ros.guide_task`.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn as Ret
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger

from proassist_ros.constants import (
    GUIDANCE,
    MAX_TURN_CHARS,
    NAMESPACE,
    NS_PER_S,
    STATS,
    TASK,
    TASK_STATE,
    USER_UTTERANCE,
    USER_UTTERANCE_STAMPED,
)
from proassist_ros.data.images import ImageDecodeError, image_to_rgb
from proassist_ros.msg import AssistantStats, Guidance, Task, TaskState, Utterance
from proassist_ros.ros import assistant_config as params
from proassist_ros.ros import conversions as conv
from proassist_ros.ros.assistant_control import AssistantControl
from proassist_ros.ros.assistant_outputs import AssistantOutputs
from proassist_ros.ros.dds_profile import apply_default_profile
from proassist_ros.ros.guide_task import GuideTaskServer
from proassist_ros.ros.nodeset import check_params_files
from proassist_ros.ros.qos_adapt import CameraSubscription
from proassist_ros.ros.spin import run_nodes
from proassist_ros.runtime.model_server import ModelServer
from proassist_ros.runtime.state_file import StateFile
from proassist_ros.runtime.stream import FrameStream
from proassist_ros.runtime.threads import prepare_process
from proassist_ros.srv import SetTask

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
# /proassist/task: transient local, so a task published before the node came up still arrives.
TASK_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class AssistantNode(AssistantControl, AssistantOutputs, LifecycleNode):
    """``/proassist/assistant``: camera frames in; Guidance, TaskState, stats, diagnostics out."""

    def __init__(self, model_server: ModelServer | None = None, camera_prefix: str = "",
                 **kwargs: Any) -> None:
        kwargs.setdefault("namespace", NAMESPACE)
        super().__init__("assistant", **kwargs)
        params.declare_parameters(self)
        # Several wearers in one process (main's --wearers): one shared model server, and an
        # absolute camera topic taken under the wearer's prefix (/camera/x → /alice/camera/x).
        self._server, self._camera_prefix = model_server, camera_prefix
        self.add_on_set_parameters_callback(self._validate_params)
        self.add_post_set_parameters_callback(self._apply_params)
        self.cfg: params.AssistantConfig | None = None
        self._model_defaults: dict[str, Any] = {}  # the model's own θ / context limit
        self.stream: FrameStream[Image | CompressedImage] = FrameStream(
            image_to_rgb, ImageDecodeError, self._publish_output, self._on_decode_error,
            self._on_worker_error, fps=params.SPECS["fps"].default)
        self._active = False
        self._entities: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._camera: CameraSubscription | None = None
        self._camera_topic = ""  # resolved camera topic, for log messages
        self._qos_resolved = 0  # incompatible-QoS events resolved by an auto re-subscription
        self._state_msg: TaskState | None = None
        self._guide: GuideTaskServer | None = None  # guide_task action + mark_step (configured)
        self._state_key: tuple | None = None
        self._frame_header: Header | None = None
        self._prev_snap, self._qos_event_at = None, float("-inf")
        # Camera callbacks (each camera subscription has a group of its own, see on_activate)
        # never wait behind control; control (lifecycle services included, the default group) is
        # serialised, so a cleanup never races the timer or a service.
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
            from proassist_ros.model.loader import default_settings

            self._model_defaults = default_settings(cfg.model)
            engine_cfg = cfg.engine_config(self._model_defaults)
        except (ValueError, OSError) as exc:
            return self._fail(f"invalid configuration: {exc}")
        try:
            state_file = StateFile(cfg.state_file) if cfg.state_file else None
        except ValueError as exc:
            return self._fail(str(exc))
        try:
            session = params.start_session(cfg, engine_cfg, knowledge, self._server,
                                           self.get_fully_qualified_name())
        except Exception as exc:  # noqa: BLE001 - any loader error fails the transition, named
            return self._fail(f"cannot load model {cfg.model!r}: {type(exc).__name__}: {exc}")
        self.cfg = cfg
        self._resume(session, state_file)
        self.stream.attach(session, cfg.fps, cfg.catchup_depth, state_file)
        self._state_msg = self._state_key = self._frame_header = None
        self._entities = {
            "guidance": self.create_lifecycle_publisher(Guidance, GUIDANCE, RELIABLE),
            "task_state": self.create_lifecycle_publisher(TaskState, TASK_STATE, LATCHED),
            "stats": self.create_lifecycle_publisher(AssistantStats, STATS, 10),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
            "set_task": self.create_service(SetTask, "set_task", self._on_set_task,
                                            callback_group=self._ctl_group),
            "task": self.create_subscription(
                Task, TASK, self._on_task, TASK_QOS, callback_group=self._ctl_group,
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_task_qos)),
            "reset": self.create_service(Trigger, "reset", self._on_reset,
                                         callback_group=self._ctl_group),
            "enable": self.create_service(SetBool, "enable", self._on_enable,
                                          callback_group=self._ctl_group),
            "tick": self.create_timer(1.0, self._tick, callback_group=self._ctl_group),
        }
        self._guide = GuideTaskServer(self, self, self._ctl_group)
        self.get_logger().info(f"configured: model {cfg.model!r}, {cfg.fps:g} fps, θ={engine_cfg.theta:g}, "
                               f"context limit {engine_cfg.context_limit} ({engine_cfg.context_strategy})")
        return Ret.SUCCESS

    def _resume(self, session: Any, state_file: StateFile | None) -> None:
        """Continue the session saved in ``state_file`` (a crash, kill -9); a damaged file is
        moved aside and named, and the node starts fresh."""
        try:
            saved = state_file.read() if state_file else None
            if saved:
                session.resume(saved)
                self.stream.counters.restore(saved.get("counters", {}))
                task = saved["task_state"]
                self.get_logger().info(
                    f"resumed session {saved['session_id']} from {state_file.path}: goal "
                    f"{task['goal']!r}, step {task['current_step_index']}, next guidance seq {saved['seq']}")
        except ValueError as exc:
            self.get_logger().error(str(exc))

    def on_activate(self, state: LifecycleState) -> Ret:
        """Subscribe to the camera and user utterances; start the inference thread."""
        cfg = self.cfg
        msg_type = CompressedImage if cfg.transport == "compressed" else Image
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos,
                                            matched=self._on_camera_matched)

        topic = cfg.subscribed_image_topic
        topic = self._camera_prefix + topic if topic.startswith("/") else topic

        def subscribe(qos: QoSProfile) -> Any:
            # A group of its own per subscription: should rclpy fail to run an event of a
            # subscription destroyed by a re-subscription (spin.py), only that dead subscription's
            # group stays marked busy, never the camera callbacks of the new one.
            return self.create_subscription(msg_type, topic, self._on_image,
                                            qos, event_callbacks=events,
                                            callback_group=MutuallyExclusiveCallbackGroup())

        self._camera = CameraSubscription(self, topic, cfg.image_reliability,
                                          cfg.image_depth, subscribe, self._on_camera_qos,
                                          self._ctl_group)
        self._camera_topic = self._camera.topic
        self._subs = [self.create_subscription(String, USER_UTTERANCE, self._on_utterance, 10,
                                               callback_group=self._ctl_group),
                      self.create_subscription(Utterance, USER_UTTERANCE_STAMPED,
                                               self._on_stamped_utterance, 10,
                                               callback_group=self._ctl_group)]
        self.stream.start()
        self._camera.start()
        self._active = True
        result = super().on_activate(state)
        self.stream.with_session(lambda s: self.publish_task_state(s.task_state(), force=True))
        self.get_logger().info(f"active: {self._camera_topic} (image_reliability "
                               f"{cfg.image_reliability}, depth {cfg.image_depth})")
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
        if self._camera is not None:
            self._camera.destroy()
            self._camera = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if not self.stream.stop():
            self.get_logger().warning("inference thread still busy; it ends after this frame")

    def _release(self) -> None:
        if self._guide is not None:
            self._guide.close()
            self._guide = None
        destroyers = ((LifecyclePublisher, self.destroy_lifecycle_publisher),
                      (Publisher, self.destroy_publisher), (Timer, self.destroy_timer),
                      (Subscription, self.destroy_subscription))
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

    def _on_utterance(self, msg: String | Utterance, stamp_s: float | None = None) -> None:
        text = msg.text if isinstance(msg, Utterance) else msg.data
        if len(text) > MAX_TURN_CHARS:
            self.get_logger().warning(f"user utterance of {len(text)} characters cut to {MAX_TURN_CHARS}",
                                      throttle_duration_sec=10.0)
        if text.strip():
            self.stream.add_utterance(text, stamp_s)

    def _on_stamped_utterance(self, msg: Utterance) -> None:
        """ASR: the turn enters where it was said (a zero stamp: like typed text)."""
        stamp_ns = conv.time_to_ns(msg.header.stamp)
        self._on_utterance(msg, stamp_ns / NS_PER_S if stamp_ns else None)

    def _on_decode_error(self, exc: Exception) -> None:
        self.get_logger().warning(f"dropping undecodable frames (counted in stats): {exc}",
                                  throttle_duration_sec=10.0)

    def _on_worker_error(self, exc: BaseException) -> None:
        self.get_logger().error(f"frame processing failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=10.0)


def main(argv: list[str] | None = None) -> int:
    """``proassist_node [--wearers a,b,...] [--ros-args ...]``: run until SIGINT/SIGTERM.

    ``--wearers a,b``: one assistant per wearer, in namespace ``/<wearer>/proassist``, its
    (absolute) ``image_topic`` under ``/<wearer>`` (``/alice/camera/image_raw``), all on one
    shared model process that decides their frames together (runtime/model_server.py).
    """
    profile = apply_default_profile()  # before the first participant; a user's own one wins
    threading_note = prepare_process()  # before torch loads (runtime/threads.py)
    argv = list(argv if argv is not None else sys.argv)
    try:
        wearers = params.parse_wearers(rclpy.utilities.remove_ros_args(argv)[1:])
        check_params_files(argv)
    except ValueError as exc:
        print(f"proassist_node: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    server = ModelServer(f"{params.__name__}:load_model", f"{params.__name__}:new_session") if wearers else None

    def make() -> list[AssistantNode]:
        if server is None:
            nodes = [AssistantNode()]
        else:
            nodes = [AssistantNode(server, f"/{w}", namespace=f"/{w}/{NAMESPACE}") for w in wearers]
        nodes[0].get_logger().info(f"Fast DDS profile: {profile or 'none (middleware defaults)'}; "
                                   f"{threading_note}" + (f"; wearers: {', '.join(wearers)} on one "
                                                          "model process" if wearers else ""))
        return nodes

    try:
        return run_nodes("proassist_node", make, MultiThreadedExecutor(num_threads=4 + 2 * len(wearers)))
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
