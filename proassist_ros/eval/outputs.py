"""Write an evaluation run as a ROS 2 bag: /proassist/guidance and /proassist/task_state.

The stamps are on the input bag's time base (t0 + t), so the output bag lines up with the input
in any bag viewer, exactly like what ``ros2 bag record`` of the live nodes would hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from proassist_ros.constants import GUIDANCE_TOPIC, NS_PER_S, TASK_STATE_TOPIC
from proassist_ros.data.bags import typestore
from proassist_ros.eval.offline import VideoRun

GUIDANCE_TYPE = "proassist_ros/msg/Guidance"
TASK_STATE_TYPE = "proassist_ros/msg/TaskState"


def _time(ts, ns: int):
    return ts.types["builtin_interfaces/msg/Time"](sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def write_run_bag(run: VideoRun, path: Path, t0_ns: int, frame_id: str = "head_camera") -> Path:
    """One MCAP bag with the run's utterances (Guidance) and task states (TaskState)."""
    ts = typestore()
    Header, Guidance, TaskState = (ts.types[n] for n in ("std_msgs/msg/Header", GUIDANCE_TYPE, TASK_STATE_TYPE))
    path = Path(path)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    events: list[tuple[int, int, object, str]] = []
    seq = 0
    for f in run.frames:
        if not f.spoke:
            continue
        ns = t0_ns + round(f.t * NS_PER_S)
        msg = Guidance(header=Header(stamp=_time(ts, ns), frame_id=frame_id), session_id=run.video_id,
                       seq=seq, text=f.text, kind=int(f.kind), priority=1, interrupt=False,
                       talk_probability=float(f.p_speak), threshold=float(run.theta), step_index=-1,
                       latency_s=float(f.latency_s))
        events.append((ns, 0, msg, GUIDANCE_TYPE))
        seq += 1
    for t, s in run.task_states:
        ns = t0_ns + round(t * NS_PER_S)
        msg = TaskState(
            header=Header(stamp=_time(ts, ns), frame_id=frame_id), session_id=run.video_id,
            goal=s["goal"], status=int(s["status"]), steps=list(s["steps"]),
            current_step_index=int(s["current_step_index"]),
            completed_steps=np.array(s["completed_steps"], dtype=np.int32), progress=float(s["progress"]),
            progress_summary=s["progress_summary"],
            summary_stamp=_time(ts, t0_ns + round(float(s["summary_stamp_s"]) * NS_PER_S)),
            last_guidance_seq=max(0, int(s["last_guidance_seq"])), elapsed_s=float(s["elapsed_s"]))
        events.append((ns, 1, msg, TASK_STATE_TYPE))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {GUIDANCE_TYPE: w.add_connection(GUIDANCE_TOPIC, GUIDANCE_TYPE, typestore=ts),
                 TASK_STATE_TYPE: w.add_connection(TASK_STATE_TOPIC, TASK_STATE_TYPE, typestore=ts)}
        for ns, _, msg, typ in sorted(events, key=lambda e: (e[0], e[1])):
            w.write(conns[typ], ns, ts.serialize_cdr(msg, typ))
    return path
