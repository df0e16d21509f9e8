"""The assistant node over real DDS: `proassist_node -p model:=tiny` in its own process.

A separate camera process (test/helpers/camera_publisher.py) sends frames at 10 Hz with known
stamps; this test's own rclpy node listens to the outputs and calls the services. Frame stamps
are ``start + i * 0.1 s``, so with fps = 2 exactly the frames with i % 5 == 0 are processed.
The tiny model's replies are capped at 8 tokens (``reply_max_tokens``) so one frame takes ~0.1 s
and the worker keeps up; θ = 1.0 makes it speak at every processed frame (silent iff
P(silence) > θ), so every processed frame shows up as one Guidance.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.dds

NS = 1_000_000_000
START_S = 1_700_000_000
PERIOD_NS = NS // 10
FRAME_ID = "head_camera_optical_frame"
# image_depth 5 (default 1): these tests count frames exactly, and on a 2-core machine shared with
# other test runs the executor is sometimes not scheduled for >100 ms; with depth 1 DDS then
# replaces a frame before its callback runs. The callback is cheap and the mailbox after the fps
# gate is what keeps the worker on the newest frame, so a deeper DDS queue adds no lag.
NODE = ["-m", "proassist_ros.ros.assistant_node", "--ros-args", "-p", "model:=tiny",
        "-p", "theta:=1.0", "-p", "reply_max_tokens:=8", "-p", "image_depth:=5"]
CAMERA = "test/helpers/camera_publisher.py"


class ProcessLog:
    """Collects a child's merged stdout/stderr lines on a thread (never blocks the test)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines = proc, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        return self.wait_for_count(needle, 1, timeout)

    def wait_for_count(self, needle: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text.count(needle) >= count:
                return True
            time.sleep(0.05)
        return False


class Probe:
    """The test's own node: records every output of the assistant and calls its services."""

    def __init__(self, ctx: Any) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from proassist_ros.msg import AssistantStats, Guidance, TaskState

        self.node = rclpy.create_node("probe", context=ctx)
        self.guidance: list[Guidance] = []
        self.states: list[TaskState] = []
        self.stats: list[AssistantStats] = []
        self.diags: list[Any] = []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sub = self.node.create_subscription
        sub(Guidance, "/proassist/guidance", self.guidance.append, reliable)
        sub(TaskState, "/proassist/task_state", self.states.append, latched)
        sub(AssistantStats, "/proassist/stats", self.stats.append, 10)
        sub(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def wait(self, pred: Callable[[], Any], timeout: float, what: str | Callable[[], str]) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout:g} s waiting for {what if isinstance(what, str) else what()}")

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 20.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            future = client.call_async(request)
            self.wait(future.done, timeout, f"reply of {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def settle(self) -> Any:
        """Stats once the stream is over: two fresh messages with the same, fully accounted counts.

        Counting from messages that arrive after the call means no sleep and no assumption about
        how many frames DDS delivered (under load a few may be lost before the callback runs).
        """
        first = len(self.stats)

        def settled() -> Any:
            if len(self.stats) < first + 2:
                return None
            a, b = self.stats[-2], self.stats[-1]
            counts = (b.frames_received, b.frames_processed, b.frames_dropped, b.decode_errors)
            same = counts == (a.frames_received, a.frames_processed, a.frames_dropped,
                              a.decode_errors)
            return b if same and sum(counts[1:]) == counts[0] else None
        return self.wait(settled, 30, lambda: f"settled stats (last: {self.stats[-1:]})")

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def probe(rclpy_context):
    p = Probe(rclpy_context)
    yield p
    p.close()


def start_node(spawn: Callable, probe: Probe, *args: str) -> ProcessLog:
    """Start proassist_node and wait until it is active (its stats arrive)."""
    log = ProcessLog(spawn([*NODE, *args]))
    probe.wait(lambda: probe.stats or log.proc.poll() is not None, 40, "the node's first stats")
    assert log.proc.poll() is None, log.text
    return log


def run_camera(spawn: Callable, node: ProcessLog, *args: str, timeout: float = 40.0) -> list[dict]:
    """Run the camera process to completion once ``node`` has matched it; its frame records."""
    matched = node.text.count("camera publisher matched")
    proc = spawn([CAMERA, "--go-on-stdin", *args], stdin=subprocess.PIPE)
    if not node.wait_for_count("camera publisher matched", matched + 1, 30):
        proc.kill()
        pytest.fail(f"the node never matched the camera publisher:\n{node.text}")
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r for r in records if "i" in r]


def grid(first_s: float, count: int, skip: tuple[int, ...] = ()) -> list[int]:
    """Stamps (ns) of the frames the 2 fps gate keeps from a 10 Hz run starting at ``first_s``."""
    start = round(first_s * NS)
    return [start + i * PERIOD_NS for i in range(0, count, 5) if i not in skip]


def min_received(sent: int) -> int:
    """Frames that must arrive: all but 10 %. Without the DDS profile 3/20 (640x480) and 1/20
    (1280x720) arrive; under CPU load from parallel test runs a starved executor can still miss
    one or two (measured: 36-39/40 with image_depth 1, 56-60/60 with depth 5 on 2 busy cores)."""
    return sent - max(1, sent // 10)


def check_sampling(got: list[int], frames: list[dict], received: int, skip: tuple[int, ...] = ()):
    """Processed stamps are frame stamps, one per 0.5 s cell of the stamp grid, in order; when
    every frame arrived they are exactly the grid points (minus malformed ones)."""
    sent = [f["stamp_ns"] for f in frames]
    assert set(got) <= set(sent)
    cells = [(t - sent[0]) // (NS // 2) for t in got]
    assert cells == sorted(set(cells)), cells
    if received == len(frames):
        first_s = sent[0] / NS
        assert got == grid(first_s, len(frames), skip)


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def test_raw_frames_end_to_end(spawn, probe):
    """Guidance/TaskState/stats arrive with the frames' stamps; malformed frames are counted."""
    node = start_node(spawn, probe)
    # 27 is sampled out; 30-32 straddle the 3.0 s grid point: whichever of them arrives first
    # is kept and fails to decode (one error even if DDS lost one of them under load).
    frames = run_camera(spawn, node, "--count", "40", "--malformed", "27,30,31,32",
                        "--start", str(START_S))
    assert len(frames) == 40
    stats = probe.settle()
    assert stats.frames_received >= min_received(40), stats  # the DDS profile delivers 640x480
    assert stats.decode_errors == 1
    assert stats.frames_processed == 7 if stats.frames_received == 40 else 6 <= stats.frames_processed

    got = probe.wait(lambda: len(probe.guidance) >= stats.frames_processed and probe.guidance,
                     10, "one guidance per processed frame")
    check_sampling([stamp_ns(g) for g in got], frames, stats.frames_received, skip=(30,))
    assert len(got) == stats.frames_processed
    assert [g.seq for g in got] == list(range(len(got)))
    assert {g.header.frame_id for g in got} == {FRAME_ID}
    assert len({g.session_id for g in got}) == 1
    assert all(0.0 < g.latency_s < 5.0 and g.threshold == pytest.approx(1.0) for g in got)
    assert all(0.0 <= g.talk_probability <= 1.0 and g.text for g in got)

    last = probe.wait(lambda: probe.states and stamp_ns(probe.states[-1]) == stamp_ns(got[-1])
                      and probe.states[-1], 10, "a TaskState stamped with the last frame")
    assert last.session_id == got[0].session_id and last.header.frame_id == FRAME_ID
    frame_stamps = {f["stamp_ns"] for f in frames}
    # Before the first frame the state carries the activation time (and its heartbeats do).
    assert {stamp_ns(s) for s in probe.states} - frame_stamps <= {stamp_ns(probe.states[0])}

    # Still alive and healthy after the malformed frames; diagnostics said what happened.
    n = len(probe.stats)
    probe.wait(lambda: len(probe.stats) > n + 1, 5, "stats after the stream")
    assert node.proc.poll() is None
    assert any(0 < s.input_rate_hz and s.inference_time_p50_s > 0 for s in probe.stats)
    messages = [st.message for d in probe.diags for st in d.status if "assistant" in st.name]
    assert any("failed to decode" in m for m in messages), messages
    assert node.wait_for("dropping undecodable frames", 5)
    assert node.text.count("dropping undecodable frames") == 1


@pytest.mark.parametrize("runs", [[("bgr8", 1280, 720), ("mono8", 640, 480),
                                   ("rgb8", 1280, 720)]])
def test_camera_sizes_and_encodings(spawn, probe, runs):
    """Real camera sizes arrive (the DDS profile) and are processed on the 0.5 s grid."""
    node = start_node(spawn, probe)
    before = probe.stats[-1]
    for k, (encoding, width, height) in enumerate(runs):
        seen = len(probe.guidance)
        t0 = time.monotonic()
        frames = run_camera(spawn, node, "--encoding", encoding, "--width", str(width),
                            "--height", str(height), "--count", "20",
                            "--start", str(START_S + 10 * k))
        stats = probe.settle()
        received = stats.frames_received - before.frames_received
        processed = stats.frames_processed - before.frames_processed
        got = probe.wait(lambda a=seen, n=processed: len(probe.guidance) >= a + n
                         and probe.guidance[a:], 10, f"guidance of the {encoding} run")
        print(f"\n{encoding} {width}x{height} @10 Hz: received {received}/20, processed "
              f"{processed}, latency {[round(g.latency_s, 3) for g in got]} s, "
              f"wall {time.monotonic() - t0:.1f} s")
        assert received >= min_received(20) and processed == 4 == len(got)
        check_sampling([stamp_ns(g) for g in got], frames, received)
        before = stats
    seqs = [g.seq for g in probe.guidance]
    assert seqs == list(range(len(seqs)))


def test_compressed_transport(spawn, probe):
    """transport:=compressed subscribes <image_topic>/compressed; jpeg and png decode."""
    node = start_node(spawn, probe, "-p", "transport:=compressed")
    jpeg = run_camera(spawn, node, "--encoding", "jpeg", "--count", "20",
                      "--malformed", "10,11,12", "--start", str(START_S))
    stats = probe.settle()
    assert stats.frames_received >= min_received(20)
    assert (stats.decode_errors, stats.frames_processed) == (1, 3)
    check_sampling([stamp_ns(g) for g in probe.guidance], jpeg, stats.frames_received, skip=(10,))
    png = run_camera(spawn, node, "--encoding", "png", "--count", "10",
                     "--start", str(START_S + 10))
    after = probe.settle()
    assert after.frames_received - stats.frames_received >= min_received(10)
    assert after.frames_processed == 5 and after.decode_errors == 1
    got = probe.wait(lambda: probe.guidance[3:5], 10, "guidance of the png run")
    check_sampling([stamp_ns(g) for g in got], png, after.frames_received - stats.frames_received)


def _lifecycle(probe: Probe, transition: int | None = None) -> Any:
    """Trigger ``transition`` (when given) and return the node's state label afterwards."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    ok = None
    if transition is not None:
        ok = probe.call(ChangeState, "/proassist/assistant/change_state",
                        ChangeState.Request(transition=Transition(id=transition)), 60).success
    label = probe.call(GetState, "/proassist/assistant/get_state", GetState.Request())
    return ok, label.current_state.label


def _set_params(probe: Probe, **values: Any) -> list[Any]:
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    req = SetParameters.Request(
        parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return probe.call(SetParameters, "/proassist/assistant/set_parameters", req).results


def test_services_and_runtime_parameters(spawn, probe):
    """set_task / reset / enable do what they say; θ changes live, bad values are refused."""
    from std_srvs.srv import SetBool, Trigger

    from proassist_ros.msg import TaskState
    from proassist_ros.srv import SetTask

    node = start_node(spawn, probe)
    req = SetTask.Request(goal="make tea", knowledge="1. boil water\n2. add tea bag\n3. pour",
                          reset_context=True)
    resp = probe.call(SetTask, "/proassist/set_task", req)
    assert resp.success and resp.session_id, resp.message
    state = probe.wait(lambda: probe.states and probe.states[-1].goal == "make tea"
                       and probe.states[-1], 10, "TaskState with the goal")
    assert state.session_id == resp.session_id and state.status == TaskState.STATUS_ACTIVE
    assert list(state.steps) == ["boil water", "add tea bag", "pour"]

    # Live θ change is accepted and used; an out-of-range θ and a configure-time change are not.
    ok, bad, frozen = _set_params(probe, theta=0.25, fps=2.0), _set_params(probe, theta=2.0), \
        _set_params(probe, context_limit=2048)
    assert all(r.successful for r in ok)
    assert not bad[0].successful
    assert not frozen[0].successful and "configure" in frozen[0].reason
    run_camera(spawn, node, "--count", "10", "--start", str(START_S))
    probe.settle()
    got = probe.wait(lambda: probe.guidance, 10, "guidance after set_task")
    assert all(g.threshold == pytest.approx(0.25) for g in got)
    assert {g.session_id for g in got} == {resp.session_id}

    # Disabled: frames are received and dropped, nothing is processed.
    assert probe.call(SetBool, "/proassist/enable", SetBool.Request(data=False)).success
    probe.wait(lambda: probe.states[-1].status == TaskState.STATUS_PAUSED, 10, "TaskState PAUSED")
    before = probe.settle()
    run_camera(spawn, node, "--count", "10", "--start", str(START_S + 10))
    stats = probe.settle()
    received = stats.frames_received - before.frames_received
    assert received >= min_received(10) and stats.frames_processed == before.frames_processed
    assert stats.frames_dropped - before.frames_dropped == received
    assert probe.call(SetBool, "/proassist/enable", SetBool.Request(data=True)).success
    probe.wait(lambda: probe.states[-1].status == TaskState.STATUS_ACTIVE, 10, "TaskState ACTIVE again")

    # Reset: a new session, no task; guidance seq restarts at 0.
    reply = probe.call(Trigger, "/proassist/reset", Trigger.Request())
    assert reply.success
    fresh = probe.wait(lambda: probe.states and probe.states[-1].session_id != resp.session_id
                       and probe.states[-1], 10, "TaskState of the new session")
    assert fresh.goal == "" and fresh.status == TaskState.STATUS_IDLE and fresh.session_id in reply.message
    before = len(probe.guidance)
    run_camera(spawn, node, "--count", "10", "--start", str(START_S + 20))
    probe.settle()
    after = probe.wait(lambda: probe.guidance[before:], 10, "guidance after reset")
    assert after[0].seq == 0 and after[0].session_id == fresh.session_id


def test_lifecycle_transitions_and_bad_model(spawn, probe):
    """A bad model path fails configure naming it; then configure/activate/deactivate/cleanup."""
    from lifecycle_msgs.msg import Transition

    bad = "/no/such/proassist_model"
    log = ProcessLog(spawn([*NODE, "-p", f"model:={bad}"]))
    assert log.wait_for("configure failed", 40), log.text
    assert bad in log.text
    assert _lifecycle(probe) == (None, "unconfigured")
    assert log.proc.poll() is None

    assert all(r.successful for r in _set_params(probe, model="tiny"))  # allowed: unconfigured
    assert _lifecycle(probe, Transition.TRANSITION_CONFIGURE) == (True, "inactive")
    assert not _set_params(probe, model="embedded")[0].successful  # frozen once configured
    assert _lifecycle(probe, Transition.TRANSITION_ACTIVATE) == (True, "active")
    probe.wait(lambda: probe.stats, 10, "stats once active")
    run_camera(spawn, log, "--count", "10", "--start", str(START_S))
    assert probe.settle().frames_processed == 2  # one frame per 0.5 s cell

    assert _lifecycle(probe, Transition.TRANSITION_DEACTIVATE) == (True, "inactive")
    proc = spawn([CAMERA, "--count", "5", "--wait", "3"])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out  # inactive: no camera subscription exists
    assert _lifecycle(probe, Transition.TRANSITION_ACTIVATE) == (True, "active")
    n = len(probe.guidance)
    run_camera(spawn, log, "--count", "10", "--start", str(START_S + 10))
    probe.settle()
    assert probe.wait(lambda: len(probe.guidance) >= n + 2, 10, "guidance after re-activation")

    assert _lifecycle(probe, Transition.TRANSITION_DEACTIVATE) == (True, "inactive")
    assert _lifecycle(probe, Transition.TRANSITION_CLEANUP) == (True, "unconfigured")
    assert _lifecycle(probe, Transition.TRANSITION_CONFIGURE) == (True, "inactive")
    assert log.proc.poll() is None


def test_sim_time_and_replay_speed(spawn, probe):
    """use_sim_time: node time follows /clock; a 2x replay processes exactly the same frames."""
    from rosgraph_msgs.msg import Clock

    from proassist_ros.ros.conversions import ns_to_time

    clock_pub = probe.node.create_publisher(Clock, "/clock", 10)
    sim_ns = [500 * NS]

    def tick() -> None:
        sim_ns[0] += NS // 10
        clock_pub.publish(Clock(clock=ns_to_time(sim_ns[0])))

    timer = probe.node.create_timer(0.1, tick)
    try:
        node = start_node(spawn, probe, "-p", "use_sim_time:=true")
        frames = run_camera(spawn, node, "--count", "40", "--speed", "2.0",
                            "--start", str(START_S))
        stats = probe.settle()
        assert stats.frames_processed == 8  # the same 8 frames as at 1x (one per 0.5 s cell)
        got = probe.wait(lambda: len(probe.guidance) >= 8 and probe.guidance, 10, "8 guidance")
        check_sampling([stamp_ns(g) for g in got], frames, stats.frames_received)
        stats_stamps = [stamp_ns(s) for s in probe.stats]
        assert all(500 * NS < t <= sim_ns[0] for t in stats_stamps), stats_stamps
    finally:
        probe.node.destroy_timer(timer)


def test_incompatible_camera_qos_is_reported(spawn, probe):
    """A best-effort camera and a node asking for reliable: counted, logged, WARN diagnostics."""
    node = start_node(spawn, probe, "-p", "image_reliability:=reliable")
    proc = spawn([CAMERA, "--count", "5", "--wait", "5"])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out  # never matched
    stats = probe.wait(lambda: probe.stats[-1].incompatible_qos_events >= 1 and probe.stats[-1],
                       15, "an incompatible-QoS event in stats")
    assert stats.frames_received == 0
    assert node.wait_for("incompatible", 5), node.text
    probe.wait(lambda: any("incompatible-QoS" in st.message and st.level == b"\x01"
                           for d in probe.diags for st in d.status), 5, "WARN diagnostics")
