"""The DDS side of ``proassist replay`` (ros/replay.py): waiting on the running assistant, reading
its parameters, giving it the bag's task, recording its outputs, and knowing when it is done.

Every wait is bounded and polls a condition on what arrived over DDS; none is a fixed sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proassist_ros.constants import GUIDANCE, NS_PER_S, STATS, TASK, TASK_STATE
from proassist_ros.data.bags import IMAGE_TOPIC, IMAGE_TYPE, read_bag
from proassist_ros.data.dataset_read import choose_camera_topic
from proassist_ros.data.schema import CAMERA_TYPES, COMPRESSED_TOPIC, TASK_TOPIC

if TYPE_CHECKING:
    from proassist_ros.ros.replay import ReplaySettings

COMPRESSED_TYPE = CAMERA_TYPES[COMPRESSED_TOPIC]
PARAMS = ("model", "theta", "fps", "transport", "image_topic", "reply_max_tokens",
          "context_strategy", "context_limit", "use_sim_time")


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``cond`` until truthy (returned); RuntimeError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)  # waiting on another process over DDS: nothing to block on


def counts(stats: Any) -> tuple[int, int, int, int]:
    """AssistantStats' frame counters: received, processed, dropped, decode errors."""
    return (stats.frames_received, stats.frames_processed, stats.frames_dropped, stats.decode_errors)


class Recorder:
    """The node's outputs as they arrive (Guidance, TaskState, stats), from the executor thread."""

    def __init__(self, node: Any, settings: ReplaySettings) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from proassist_ros.msg import AssistantStats, Guidance, TaskState

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.guidance: list[Any] = []
        self.states: list[Any] = []
        self.stats: list[Any] = []
        self.topics = {"guidance": settings.topic(GUIDANCE), "task_state": settings.topic(TASK_STATE)}
        node.create_subscription(Guidance, self.topics["guidance"], self.guidance.append, reliable)
        node.create_subscription(TaskState, self.topics["task_state"], self.states.append, latched)
        node.create_subscription(AssistantStats, settings.topic(STATS), self.stats.append, reliable)

    def session_state(self, session_id: str, goal: str | None) -> Any:
        return next((s for s in reversed(self.states) if s.session_id != session_id
                     and (goal is None or s.goal == goal)), None)

    def write(self, path: Path, session_id: str) -> Path:
        """The session's Guidance and (changed) TaskState as an MCAP bag, logged at header stamps."""
        import shutil

        from rclpy.serialization import serialize_message
        from rosbags.rosbag2 import StoragePlugin, Writer

        from proassist_ros.data.bags import typestore

        events, last_state = [], None
        for order, (msgs, kind) in enumerate(((self.guidance, "Guidance"), (self.states, "TaskState"))):
            for m in msgs:
                raw = serialize_message(m)
                if m.session_id != session_id or (kind == "TaskState" and raw == last_state):
                    continue  # another session, or a heartbeat repeating the last state
                last_state = raw if kind == "TaskState" else last_state
                events.append((m.header.stamp.sec * NS_PER_S + m.header.stamp.nanosec, order, kind, raw))
        shutil.rmtree(path, ignore_errors=True)
        ts = typestore()
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {k: w.add_connection(self.topics[t], f"proassist_ros/msg/{k}", typestore=ts)
                     for k, t in (("Guidance", "guidance"), ("TaskState", "task_state"))}
            for ns, _, kind, raw in sorted(events, key=lambda e: e[:2]):
                w.write(conns[kind], ns, raw)
        return path


def node_parameters(node: Any, settings: ReplaySettings) -> dict[str, Any]:
    """The assistant's parameters that matter to a replay ({} when its service does not answer)."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = node.create_client(GetParameters, settings.topic("assistant/get_parameters"))
    try:
        if not client.wait_for_service(timeout_sec=min(10.0, settings.timeout_s)):
            return {}
        future = client.call_async(GetParameters.Request(names=list(PARAMS)))
        wait_for(future.done, settings.timeout_s, "the assistant's parameters")
        return {n: parameter_value_to_python(v) for n, v in zip(PARAMS, future.result().values, strict=True)}
    finally:
        node.destroy_client(client)


def camera_plan(bag_types: dict[str, str], params: dict[str, Any], bag: Path,
                camera_topic: str | None = None) -> tuple[str, str, list[str]]:
    """(bag camera topic, topic to publish it on, notes): the bag's frames go where the node listens.

    ``camera_topic`` (``--camera-topic``) names the bag's topic, whatever it is called; without it
    the readers' choice applies (the default topics, else the bag's only image topic). The frames
    are published on the node's ``image_topic`` (``/compressed`` appended for ``transport:
    compressed``), so their type must be the one the node's transport takes.
    """
    notes: list[str] = []
    if not params:
        src = choose_camera_topic(bag_types, bag, camera_topic)
        dst = COMPRESSED_TOPIC if bag_types[src] == COMPRESSED_TYPE else IMAGE_TOPIC
        notes.append(f"the assistant's parameters were not readable: publishing {src} on {dst}, the "
                     "node's default camera topic")
        return src, dst, notes
    compressed = params.get("transport") == "compressed"
    want = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    default = COMPRESSED_TOPIC if compressed else IMAGE_TOPIC
    if camera_topic is None and bag_types.get(default) == want:
        src = default  # a bag with both default topics: the one the node's transport takes
    else:
        src = choose_camera_topic(bag_types, bag, camera_topic, "compressed" if compressed else "raw")
    if bag_types[src] != want:
        raise ValueError(f"{bag}: the assistant subscribes {'compressed' if compressed else 'raw'} images "
                         f"(transport {params.get('transport')!r}) but the bag's camera topic {src} holds "
                         f"{bag_types[src]}; start the node with "
                         f"transport:={'raw' if compressed else 'compressed'}")
    if compressed and IMAGE_TOPIC in bag_types and camera_topic is None:
        notes.append("the node gets the JPEG frames while `proassist eval` reads the raw ones")
    base = str(params.get("image_topic") or IMAGE_TOPIC).rstrip("/")
    dst = f"{base}/compressed" if compressed else base
    if src != dst:
        notes.append(f"the bag's {src} is published on {dst}, the topic the assistant subscribes")
    return src, dst, notes


def wait_camera_matched(node: Any, pub: Any, topic: str, timeout: float, settle_s: float = 3.0) -> str:
    """Wait until the node's camera subscription matched us, reliable once ``auto`` adapted.

    ``image_reliability: auto`` re-subscribes reliable after it sees our reliable publisher (and
    frames in between are lost), so wait for that; an explicit best_effort never changes, so go
    on after ``settle_s`` with a matched best-effort subscription. Returns the reliability.
    """
    from rclpy.qos import ReliabilityPolicy

    wait_for(lambda: pub.get_subscription_count() > 0, timeout, f"a subscriber on {topic} (the assistant)")
    since = time.monotonic()
    while True:
        infos = node.get_subscriptions_info_by_topic(topic)
        reliable = [i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos]
        if infos and all(reliable) and pub.get_subscription_count() == len(infos):
            return "reliable"
        if time.monotonic() - since > settle_s and pub.get_subscription_count() > 0:
            return "best_effort"
        time.sleep(0.05)  # the node polls its graph every 0.5 s


def wait_subscription_matched(rec: Recorder, timeout: float) -> None:
    """Wait until the node's camera subscription has matched our publisher on *its* side.

    Our publisher seeing the subscription is not enough: until the subscription's reader has
    discovered our writer it drops our samples, and a volatile reader never gets them back, so
    the first frames of a replay were lost (2 of 148 at times). The node reports its side in
    AssistantStats.camera_publishers; a stats message published after ``wait_camera_matched``
    saw the final subscription tells. (A node without that field: skipped.)
    """
    mark = len(rec.stats)
    if rec.stats and not hasattr(rec.stats[-1], "camera_publishers"):
        return
    wait_for(lambda: any(s.camera_publishers > 0 for s in rec.stats[mark:]), timeout,
             "the assistant's camera subscription to match the replay's publisher (its stats)")


def give_task(node: Any, rec: Recorder, settings: ReplaySettings, bag: Path, old_session: str) -> tuple[str, str]:
    """Start a fresh session with the bag's task; (its session id, how it was given).

    The Task is published latched on the task topic with ``reset_context`` forced true (a new
    session and stamp grid, as offline evaluation starts); when nothing subscribes that topic
    (an older node) the ``set_task`` service gets it. A bag without a task resets the session.
    Returns once TaskState shows the new session (and goal), so no frame can overtake the task.
    """
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message

    from proassist_ros.msg import Task

    raw = next((m.raw for m in read_bag(bag, [TASK_TOPIC])), None)
    if raw is None:
        from std_srvs.srv import Trigger

        _call(node, Trigger, settings.topic("reset"), Trigger.Request(), settings.timeout_s)
        goal, via = None, "reset (the bag has no task)"
    else:
        task = deserialize_message(raw, Task)
        task.reset_context = True
        goal = task.goal.strip()
        pub = node.create_publisher(Task, settings.topic(TASK), QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        try:
            wait_for(lambda: pub.get_subscription_count() > 0, min(5.0, settings.timeout_s), "")
            pub.publish(task)
            via = "task topic"
        except RuntimeError:  # nobody subscribes the task topic: the service does the same
            from proassist_ros.srv import SetTask

            _call(node, SetTask, settings.topic("set_task"), SetTask.Request(
                goal=task.goal, knowledge=task.knowledge, steps=list(task.steps), reset_context=True),
                settings.timeout_s)
            via = "set_task service"
    state = wait_for(lambda: rec.session_state(old_session, goal), settings.timeout_s,
                     f"TaskState of a new session{f' with goal {goal!r}' if goal else ''} (task via {via})")
    return state.session_id, via


def _call(node: Any, srv_type: Any, name: str, request: Any, timeout: float) -> Any:
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"service {name} not available within {timeout:g} s")
        future = client.call_async(request)
        wait_for(future.done, timeout, f"the reply of {name}")
        resp = future.result()
        if hasattr(resp, "success") and not resp.success:
            raise RuntimeError(f"{name} refused: {resp.message}")
        return resp
    finally:
        node.destroy_client(client)


def settle(rec: Recorder, base: tuple[int, int, int, int], sent: int, timeout: float) -> Any:
    """The node's stats once every frame it got is accounted for (processed, dropped or undecodable).

    Two fresh stats with equal counts and nothing pending; and either every sent frame counted as
    received, or three equal ones in a row (frames were lost: the caller reports it).
    """
    mark = len(rec.stats)

    def done() -> Any:
        fresh = rec.stats[mark:]
        if len(fresh) < 2:
            return None
        last = counts(fresh[-1])
        if counts(fresh[-2]) != last or sum(last[1:]) != last[0]:
            return None
        if last[0] - base[0] >= sent or (len(fresh) >= 3 and counts(fresh[-3]) == last):
            return fresh[-1]
        return None

    try:
        return wait_for(done, timeout, "the assistant to finish the last frames")
    except RuntimeError as exc:
        last = counts(rec.stats[-1]) if rec.stats else "none"
        raise RuntimeError(f"{exc} (last stats received/processed/dropped/decode errors: {last}, "
                           f"{sent} frames sent; with use_sim_time the node needs /clock)") from None
