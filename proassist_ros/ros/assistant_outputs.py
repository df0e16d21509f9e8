"""The assistant node's outputs and camera events: Guidance, TaskState, stats, diagnostics.

A mixin of :class:`~proassist_ros.ros.assistant_node.AssistantNode`, kept apart so the node module
stays about its lifecycle and inputs (like :mod:`~proassist_ros.ros.assistant_control` for its
services). Guidance and TaskState go out from the worker thread under the session lock (so they
leave in the order the session made them); the 1 Hz tick adds stats, the TaskState heartbeat and
/diagnostics. The camera subscription's QoS events are counted here for the stats.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from rclpy.qos import QoSPolicyKind
from std_msgs.msg import Header

from proassist_ros.msg import TaskState
from proassist_ros.ros import conversions as conv
from proassist_ros.ros.qos_adapt import AUTO, BEST_EFFORT, ReliabilityChoice
from proassist_ros.runtime.health import assess

if TYPE_CHECKING:
    from proassist_ros.ros import assistant_config as params
    from proassist_ros.ros.guide_task import GuideTaskServer
    from proassist_ros.ros.qos_adapt import CameraSubscription
    from proassist_ros.runtime.stream import FrameStream, Output


class AssistantOutputs:
    """Publishing and camera events; needs the node's ``stream``, ``cfg``, ``_entities``,
    ``_camera`` and ``_guide`` and the Node API from the class it is mixed into."""

    stream: FrameStream
    cfg: params.AssistantConfig | None
    _entities: dict[str, Any]
    _camera: CameraSubscription | None
    _camera_topic: str
    _guide: GuideTaskServer | None
    _active: bool
    _qos_resolved: int
    _qos_event_at: float
    _prev_snap: Any
    _state_msg: TaskState | None
    _state_key: tuple | None
    _frame_header: Header | None

    def _publish_output(self, out: Output) -> None:
        """Worker thread: Guidance (when the engine spoke) and TaskState (when it changed)."""
        cfg = self.cfg
        header = Header(stamp=conv.ns_to_time(out.job.stamp_ns),
                        frame_id=(cfg.frame_id if cfg else "") or out.job.payload.header.frame_id)
        self._frame_header = header
        if out.result.spoke and "guidance" in self._entities:
            self._entities["guidance"].publish(
                conv.guidance_msg(out.result, header, out.session_id, out.latency_s()))
            if self._guide is not None:
                self._guide.on_guidance()
        self.publish_task_state(out.state)

    # ---- outputs -----------------------------------------------------------------------------
    def publish_task_state(self, state: Any, force: bool = False) -> TaskState | None:
        """Publish ``state`` when it changed (or ``force``); the message in force. Call under the
        session lock, so states go out in the order the session made them."""
        if not self.stream.enabled and state.status == TaskState.STATUS_ACTIVE:
            state = dataclasses.replace(state, status=TaskState.STATUS_PAUSED)  # /enable false
        key = conv.task_state_key(state)
        if key == self._state_key and not force:
            return self._state_msg
        header = self._frame_header or Header(stamp=self.get_clock().now().to_msg(),
                                              frame_id=self.cfg.frame_id if self.cfg else "")
        self._state_key, self._state_msg = key, conv.task_state_msg(state, header)
        if "task_state" in self._entities:
            self._entities["task_state"].publish(self._state_msg)
        if self._guide is not None:
            self._guide.on_state(self._state_msg)  # GuideTask feedback / completion
        return self._state_msg

    def _tick(self) -> None:
        """1 Hz: stats, the TaskState heartbeat and /diagnostics."""
        camera = self._camera.choice if self._camera is not None else None
        sub = self._camera.subscription if self._camera is not None else None
        snap = dataclasses.replace(
            self.stream.snapshot(self._active, time.monotonic() - self._qos_event_at),
            qos_events_resolved=self._qos_resolved, camera_qos=camera.describe() if camera else "",
            camera_publishers=sub.get_publisher_count() if sub is not None else 0)
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

    # ---- camera events -----------------------------------------------------------------------
    def _on_incompatible_qos(self, info: Any) -> None:
        self.stream.counters.add(incompatible_qos_events=info.total_count_change)
        self._qos_event_at = time.monotonic()
        try:
            policy = QoSPolicyKind(int(info.last_policy_kind)).name
        except ValueError:
            policy = str(info.last_policy_kind)
        auto = self.cfg is not None and self.cfg.image_reliability == AUTO
        choice = self._camera.choice if self._camera is not None else None
        if auto and choice is not None and choice.reliability == BEST_EFFORT:
            # auto already re-subscribed best effort (which matches any publisher) after the
            # publisher that caused this appeared: resolved. (_on_camera_qos covers the other
            # order; the choice is set before it reads the counter, so one of the two sees it.)
            self._qos_resolved = self.stream.counters.values()["incompatible_qos_events"]
        self.get_logger().warning(
            f"a publisher on {self._camera_topic} offers QoS incompatible with ours ({policy}); "
            + ("image_reliability auto adapts to it" if auto
               else "set image_reliability auto (or to match the camera)"))

    def _on_camera_qos(self, choice: ReliabilityChoice) -> None:
        """Log each reliability decision once; a re-subscription resolves earlier QoS events."""
        if self._camera is not None and self._camera.resubscriptions:
            self._qos_resolved = self.stream.counters.values()["incompatible_qos_events"]
        depth = self.cfg.image_depth if self.cfg else 0
        self.get_logger().info(f"camera QoS on {self._camera_topic}: {choice.reliability}, "
                               f"depth {depth} ({choice.reason})")

    def _on_camera_matched(self, info: Any) -> None:
        """Log camera publishers coming and going: 'no frames' is the usual support question."""
        verb = "matched" if info.current_count_change > 0 else "left"
        self.get_logger().info(f"camera publisher {verb} on {self._camera_topic} "
                               f"({info.current_count} now)")
