"""Engine dataclasses → ROS messages, and stamp helpers.

Stamps travel as integer nanoseconds inside the node and output headers are *copied* from the
triggering frame's header (never rebuilt from a float), so Guidance/TaskState stamps equal the
image stamps bit for bit and replay scoring can join on them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from proassist_ros.constants import NS_PER_S
from proassist_ros.msg import AssistantStats, Guidance, TaskState
from proassist_ros.runtime.health import StatsSnapshot, key_values
from proassist_ros.runtime.stages import STAGES

if TYPE_CHECKING:
    from proassist_ros.engine import FrameResult, TaskStateData

def time_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time → integer nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_time(ns: int) -> Time:
    """Integer nanoseconds → builtin_interfaces/Time."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def seconds_to_time(seconds: float) -> Time:
    """Float seconds (engine stamps) → builtin_interfaces/Time (0 for negative/unknown)."""
    return ns_to_time(round(seconds * NS_PER_S)) if seconds > 0 else Time()


def output_header(frame_header: Header, frame_id_override: str = "") -> Header:
    """A copy of the triggering frame's header, with an optional frame_id override."""
    stamp = Time(sec=frame_header.stamp.sec, nanosec=frame_header.stamp.nanosec)
    return Header(stamp=stamp, frame_id=frame_id_override or frame_header.frame_id)


def guidance_msg(result: FrameResult, header: Header, session_id: str,
                 latency_s: float) -> Guidance:
    """The Guidance message for a frame at which the engine spoke."""
    return Guidance(
        header=header, session_id=session_id, seq=max(0, int(result.seq)), text=result.text,
        kind=int(result.kind), priority=int(result.priority), interrupt=bool(result.interrupt),
        talk_probability=float(1.0 - result.p_silence), threshold=float(result.threshold),
        step_index=int(result.step_index), latency_s=float(latency_s))


def task_state_key(data: TaskStateData) -> tuple[Any, ...]:
    """What makes a TaskState 'changed' (elapsed time alone does not: the heartbeat covers it)."""
    values = dataclasses.asdict(data)
    values.pop("elapsed_s", None)
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(values.items()))


def task_state_msg(data: TaskStateData, header: Header) -> TaskState:
    """TaskState from the engine's TaskStateData (fields 1:1, summary stamp as a Time)."""
    return TaskState(
        header=header, session_id=data.session_id, goal=data.goal, status=int(data.status),
        steps=list(data.steps), current_step_index=int(data.current_step_index),
        completed_steps=[int(i) for i in data.completed_steps], progress=float(data.progress),
        progress_summary=data.progress_summary,
        summary_stamp=seconds_to_time(float(data.summary_stamp_s)),
        last_guidance_seq=max(0, int(data.last_guidance_seq)), elapsed_s=float(data.elapsed_s))


def stats_msg(snap: StatsSnapshot, header: Header) -> AssistantStats:
    """AssistantStats from a snapshot (stage timings in STAGES order)."""
    st = snap.stages
    return AssistantStats(
        header=header, frames_received=snap.frames_received,
        frames_processed=snap.frames_processed, frames_dropped=snap.frames_dropped,
        decode_errors=snap.decode_errors, inference_time_p50_s=snap.inference_p50_s,
        inference_time_p95_s=snap.inference_p95_s, context_tokens=snap.context_tokens,
        summaries_triggered=snap.summaries_triggered, real_time_factor=snap.real_time_factor,
        input_rate_hz=snap.input_rate_hz, incompatible_qos_events=snap.incompatible_qos_events,
        frames_caught_up=snap.frames_caught_up, camera_publishers=snap.camera_publishers,
        latency_p50_s=st.latency_p50_s,
        latency_max_s=st.latency_max_s, stage_names=list(STAGES),
        stage_p50_s=list(st.stage_p50_s), stage_max_s=list(st.stage_max_s),
        slowest_frame_stages_s=list(st.slowest.seconds) if st.slowest else [0.0] * len(STAGES),
        slowest_frame=st.slowest.describe() if st.slowest else "")


def diagnostics_msg(snap: StatsSnapshot, level: int, message: str, stamp: Time, name: str,
                    hardware_id: str) -> DiagnosticArray:
    """A one-status DiagnosticArray carrying the verdict and every stats figure."""
    status = DiagnosticStatus(
        level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in key_values(snap)])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
