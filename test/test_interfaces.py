"""Interfaces v1: typed constants, field defaults, CDR round trips, and the package layout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message

from proassist_ros.msg import AssistantStats, Guidance, TaskState
from proassist_ros.srv import SetTask

REPO = Path(__file__).resolve().parents[1]


def _guidance() -> Guidance:
    g = Guidance()
    g.header.stamp = Time(sec=12, nanosec=500_000_000)
    g.header.frame_id = "head_camera"
    g.session_id, g.seq, g.text = "s-1", 7, "Now tighten the <|eot_id|> screw — ünïcode"
    g.kind, g.priority, g.interrupt = Guidance.KIND_CORRECTION, Guidance.PRIORITY_HIGH, True
    g.talk_probability, g.threshold, g.step_index, g.latency_s = 0.75, 0.25, 2, 0.125
    return g


def _task_state() -> TaskState:
    t = TaskState()
    t.header.stamp = Time(sec=3)
    t.session_id, t.goal, t.status = "s-1", "make tea", TaskState.STATUS_ACTIVE
    t.steps = ["boil water", "add tea bag", "pour"]
    t.current_step_index, t.completed_steps, t.progress = 1, [0], 0.5
    t.progress_summary, t.summary_stamp = "Water boiled.", Time(sec=2)
    t.last_guidance_seq, t.elapsed_s = 7, 93.5
    return t


def test_constants_are_typed_and_distinct():
    kinds = [Guidance.KIND_INSTRUCTION, Guidance.KIND_CORRECTION, Guidance.KIND_CONFIRMATION,
             Guidance.KIND_ANSWER, Guidance.KIND_PROGRESS_SUMMARY, Guidance.KIND_OTHER]
    assert len(set(kinds)) == 6 and all(isinstance(k, int) for k in kinds)
    statuses = [TaskState.STATUS_IDLE, TaskState.STATUS_ACTIVE, TaskState.STATUS_PAUSED,
                TaskState.STATUS_COMPLETED, TaskState.STATUS_ABORTED]
    assert len(set(statuses)) == 5
    assert Guidance.PRIORITY_LOW < Guidance.PRIORITY_NORMAL < Guidance.PRIORITY_HIGH
    assert TaskState.PROGRESS_UNKNOWN == pytest.approx(-1.0)
    # Field defaults say "unknown" rather than a misleading 0.
    assert Guidance().step_index == -1
    assert TaskState().current_step_index == -1 and TaskState().progress == pytest.approx(-1.0)


@pytest.mark.parametrize("factory", [_guidance, _task_state])
def test_cdr_round_trip(factory):
    msg = factory()
    back = deserialize_message(serialize_message(msg), type(msg))
    assert back == msg


def test_stats_and_service_round_trip():
    s = AssistantStats(frames_received=10, frames_processed=4, frames_dropped=6, decode_errors=1,
                       inference_time_p50_s=0.0625, inference_time_p95_s=0.25, context_tokens=321,
                       summaries_triggered=2, real_time_factor=0.5)
    assert deserialize_message(serialize_message(s), AssistantStats) == s
    req = SetTask.Request(goal="g", knowledge="1. a\n2. b", steps=["a", "b"], reset_context=True)
    assert deserialize_message(serialize_message(req), SetTask.Request) == req
    resp = SetTask.Response(success=True, message="ok", session_id="x")
    assert deserialize_message(serialize_message(resp), SetTask.Response) == resp


def test_installed_interfaces_and_source_modules_share_one_package():
    """`proassist_ros.msg` comes from the CMake install, pure-Python modules from the source tree."""
    code = ("import proassist_ros.msg as m, proassist_ros.utils.netns as n;"
            "print(m.__file__); print(n.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    msg_file, src_file = (Path(p) for p in out.stdout.split())
    assert "site-packages" in msg_file.parts, msg_file     # generated, installed copy
    assert REPO / "proassist_ros" in src_file.parents     # the source tree


@pytest.mark.dds
def test_guidance_and_task_state_cross_processes(rclpy_context, spawn):
    """Both messages travel to a separate process over DDS and come back unchanged."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    peer = spawn([str(REPO / "test" / "helpers" / "interface_peer.py")])
    node = rclpy.create_node("interface_test", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    got: dict[str, object] = {}
    node.create_subscription(Guidance, "/peer/out_guidance", lambda m: got.__setitem__("g", m), latched)
    node.create_subscription(TaskState, "/peer/out_task_state", lambda m: got.__setitem__("t", m), latched)
    pub_g = node.create_publisher(Guidance, "/peer/in_guidance", latched)
    pub_t = node.create_publisher(TaskState, "/peer/in_task_state", latched)
    sent_g, sent_t = _guidance(), _task_state()
    pub_g.publish(sent_g)
    pub_t.publish(sent_t)
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline and peer.poll() is None:
        executor.spin_once(timeout_sec=0.2)
    assert peer.poll() is None, peer.stdout.read()
    assert got.get("g") == sent_g
    assert got.get("t") == sent_t
    executor.shutdown()
    node.destroy_node()
