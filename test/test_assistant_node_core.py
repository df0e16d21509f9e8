"""ROS-free parts of the assistant node: typed config, health verdicts, the frame stream core."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from proassist_ros.engine import EngineConfig
from proassist_ros.ros.assistant_config import (
    ENGINE_POLICIES,
    ENGINE_SETUP,
    PARAMS,
    RUNTIME_PARAMS,
    AssistantConfig,
    change_problem,
)
from proassist_ros.ros.qos_adapt import BEST_EFFORT, RELIABLE, choose_reliability
from proassist_ros.runtime.health import OK, WARN, StatsSnapshot, assess
from proassist_ros.runtime.stream import FrameStream, Output

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


# ---- config -----------------------------------------------------------------------------------
def test_param_table_matches_config_and_engine_defaults():
    assert {p.name: p.default for p in PARAMS} == dataclasses.asdict(AssistantConfig())
    engine = EngineConfig()
    own = AssistantConfig().engine_config({})  # θ < 0 / context_limit 0: the model's, else the engine's
    for name in (*ENGINE_POLICIES, *ENGINE_SETUP):
        if name == "ips_background":  # on purpose: live streams write summaries in the background,
            assert (own.ips_background, engine.ips_background) == (True, False)  # eval is synchronous
            continue
        assert getattr(own, name) == getattr(engine, name), name
    assert not AssistantConfig(ips_background=False).engine_config({}).ips_background
    assert set(ENGINE_POLICIES) <= RUNTIME_PARAMS


def test_model_own_theta_and_context_limit():
    """θ < 0 and context_limit 0 (the defaults) take the model's trained settings; explicit
    values win; a limit in (0, 256) is refused by name."""
    shipped = {"theta": 0.42, "context_limit": 1024, "reserve": 96}
    eng = AssistantConfig().engine_config(shipped)
    assert (eng.theta, eng.context_limit, eng.reserve) == (0.42, 1024, 96)
    eng = AssistantConfig(theta=0.7, context_limit=2048).engine_config(shipped)
    assert (eng.theta, eng.context_limit, eng.reserve) == (0.7, 2048, 128)
    with pytest.raises(ValueError, match="context_limit"):
        AssistantConfig.from_values({"context_limit": 100})


def test_engine_config_from_node_config():
    cfg = AssistantConfig(theta=0.7, context_limit=2048, context_strategy="drop_middle",
                          min_gap_s=3.0, talk_budget_per_min=4, suppress_repeats=True,
                          reply_max_tokens=20, system_prompt="Be brief.")
    eng = cfg.engine_config()
    assert (eng.theta, eng.context_limit, eng.context_strategy, eng.min_gap_s,
            eng.talk_budget_per_min, eng.suppress_repeats, eng.reply_max_tokens,
            eng.system_prompt) == (0.7, 2048, "drop_middle", 3.0, 4, True, 20, "Be brief.")
    assert AssistantConfig().engine_config().system_prompt == EngineConfig().system_prompt


@pytest.mark.parametrize("values, needle", [
    ({"context_strategy": "drop_some"}, "context_strategy"),
    ({"transport": "theora"}, "transport"),
    ({"theta": 1.5}, "theta"),
    ({"fps": 0.0}, "fps"),
    ({"fps": float("nan")}, "fps"),
    ({"image_depth": True}, "image_depth"),
    ({"autostart": "yes"}, "autostart"),
    ({"model": "  "}, "model"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_values_are_named(values, needle):
    with pytest.raises(ValueError, match=needle):
        AssistantConfig.from_values(values)


def test_integers_are_accepted_for_doubles():
    cfg = AssistantConfig.from_values({"fps": 5, "theta": 1})
    assert (cfg.fps, cfg.theta) == (5.0, 1.0) and isinstance(cfg.fps, float)


def test_compressed_topic_and_runtime_changes():
    cfg = AssistantConfig(image_topic="/cam/image_raw/", transport="compressed")
    assert cfg.subscribed_image_topic == "/cam/image_raw/compressed"
    assert AssistantConfig().subscribed_image_topic == "/camera/image_raw"
    assert change_problem("theta", 0.9, cfg) is None
    assert change_problem("theta", -1.0, cfg) is None  # back to the model's own θ
    assert "theta" in change_problem("theta", -1.5, cfg)
    assert "configure" in change_problem("model", "tiny", cfg)
    assert change_problem("model", "tiny", None) is None  # unconfigured: allowed
    assert change_problem("model", cfg.model, cfg) is None  # unchanged value: allowed
    assert change_problem("use_sim_time", True, cfg) is None  # not ours
    assert cfg.with_changes({"theta": 0.1}).theta == 0.1


# ---- health -----------------------------------------------------------------------------------
def test_health_verdicts():
    ok = StatsSnapshot(active=True, input_rate_hz=10.0, frames_processed=4)
    assert assess(ok, None)[0] == OK
    assert assess(StatsSnapshot(active=False), None) == (OK, "inactive")
    assert assess(dataclasses.replace(ok, input_rate_hz=0.0), None)[1] == "waiting for camera frames"
    level, message = assess(dataclasses.replace(ok, decode_errors=3), ok)
    assert level == WARN and "3 frame(s) failed to decode" in message
    assert assess(dataclasses.replace(ok, decode_errors=3),
                  dataclasses.replace(ok, decode_errors=3))[0] == OK  # not rising any more
    assert "falling behind" in assess(dataclasses.replace(ok, real_time_factor=1.3), ok)[1]
    assert "falling behind" in assess(dataclasses.replace(ok, overwritten=2), ok)[1]
    qos = dataclasses.replace(ok, incompatible_qos_events=1, seconds_since_qos_event=2.0)
    assert "incompatible-QoS" in assess(qos, ok)[1]
    stale = dataclasses.replace(qos, seconds_since_qos_event=300.0)
    assert assess(stale, ok)[0] == OK  # frames flow from another, compatible publisher
    assert "incompatible-QoS" in assess(dataclasses.replace(stale, input_rate_hz=0.0), ok)[1]
    # image_reliability auto re-subscribed after the event: resolved, however fresh it is.
    resolved = dataclasses.replace(qos, qos_events_resolved=1, input_rate_hz=0.0)
    assert assess(resolved, ok) == (OK, "waiting for camera frames")
    assert "incompatible-QoS" in assess(dataclasses.replace(resolved, incompatible_qos_events=2),
                                        ok)[1]  # a newer, unresolved one


# ---- camera reliability (image_reliability) ---------------------------------------------------
@pytest.mark.parametrize("setting, offered, current, expected, why", [
    ("auto", [], None, BEST_EFFORT, "no publisher yet"),
    ("auto", [], RELIABLE, RELIABLE, "keeping the last choice"),
    ("auto", ["reliable"], None, RELIABLE, "all 1 publisher(s) offer reliable"),
    ("auto", ["reliable", "reliable"], BEST_EFFORT, RELIABLE, "all 2 publisher(s)"),
    ("auto", ["reliable", "best_effort"], RELIABLE, BEST_EFFORT, "1 of 2 publisher(s)"),
    ("auto", ["best_effort"], None, BEST_EFFORT, "1 of 1 publisher(s)"),
    ("auto", ["reliable", "system_default"], None, BEST_EFFORT, "1 of 2"),  # not known reliable
    ("reliable", ["best_effort"], None, RELIABLE, "set explicitly"),
    ("best_effort", ["reliable"], RELIABLE, BEST_EFFORT, "set explicitly"),
])
def test_choose_reliability(setting, offered, current, expected, why):
    choice = choose_reliability(setting, offered, current)
    assert choice.reliability == expected and why in choice.reason
    assert choice.describe() == f"{expected} ({choice.reason})"


def test_choose_reliability_names_a_bad_setting():
    with pytest.raises(ValueError, match="image_reliability.*'sometimes'"):
        choose_reliability("sometimes", [])
    assert "image_reliability" in change_problem("image_reliability", "sometimes", None)
    assert AssistantConfig().image_reliability == "auto"


# ---- frame stream with a fake session ---------------------------------------------------------
@dataclass
class _Result:
    stamp_s: float
    spoke: bool = True
    context_event: str = ""


@dataclass
class _State:
    session_id: str = "s1"


@dataclass
class FakeSession:
    """Records calls; ``gate`` (when set) blocks push_frame until released."""

    calls: list[tuple] = field(default_factory=list)
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)
    session_id: str = "s1"
    context_tokens: int = 7

    def push_user_utterance(self, text: str, stamp_s: float) -> None:
        self.calls.append(("user", text, stamp_s))

    def push_frame(self, rgb: np.ndarray, stamp_s: float) -> _Result:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append(("frame", int(rgb[0, 0, 0]), stamp_s))
        return _Result(stamp_s)

    def push_frames(self, frames: list[tuple[np.ndarray, float]]) -> list[_Result]:
        self.calls.append(("batch", len(frames)))
        return [self.push_frame(rgb, stamp) for rgb, stamp in frames]

    def task_state(self) -> _State:
        return _State()


class BadFrame(ValueError):
    pass


def _decode(payload: int) -> np.ndarray:
    if payload < 0:
        raise BadFrame(f"frame {payload} is malformed")
    return np.full((2, 2, 3), payload, np.uint8)


def _stream(session: FakeSession, depth: int = 1) -> tuple[FrameStream, list[Output], list[Exception]]:
    outputs: list[Output] = []
    errors: list[Exception] = []
    stream = FrameStream(_decode, BadFrame, outputs.append, errors.append, errors.append)
    stream.attach(session, fps=2.0, catchup_depth=depth)
    stream.start()
    return stream, outputs, errors


def _wait(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_stream_samples_by_stamp_and_feeds_utterances_first():
    session = FakeSession()
    stream, outputs, errors = _stream(session)
    try:
        stream.add_utterance("what next?")
        for i in range(10):
            stream.offer(i, T0 + i * NS // 10)
            if i in (0, 5):  # let the worker take each kept frame before the next one
                _wait(lambda i=i: len(outputs) == (1 if i == 0 else 2))
        _wait(lambda: len(outputs) == 2)
        assert [c for c in session.calls if c[0] != "batch"] == [
            ("user", "what next?", T0 / NS), ("frame", 0, T0 / NS), ("frame", 5, (T0 + NS // 2) / NS)]
        assert [o.job.stamp_ns for o in outputs] == [T0, T0 + NS // 2]
        assert all(o.session_id == "s1" and o.latency_s() >= 0 for o in outputs)
        counts = stream.counters.values()
        assert (counts["frames_received"], counts["frames_processed"],
                counts["frames_dropped"]) == (10, 2, 8)
        snap = stream.snapshot(active=True, seconds_since_qos_event=float("inf"))
        assert snap.context_tokens == 7 and snap.inference_p50_s >= 0
        assert not errors
    finally:
        stream.detach()


def test_stamped_utterance_waits_for_the_frame_where_it_was_said():
    """ASR turns carry the time speech began: one stamped after the next frame waits for a
    later frame; one stamped in the past enters with the next backlog, at its own stamp."""
    session = FakeSession()
    stream, outputs, errors = _stream(session)
    try:
        said_at = (T0 + 12 * NS // 10) / NS  # between the frames at 1.0 s and 1.5 s
        stream.add_utterance("where is the kettle?", said_at)
        stream.offer(0, T0)
        _wait(lambda: len(outputs) == 1)
        assert not [c for c in session.calls if c[0] == "user"]  # not before frame 0
        stream.offer(10, T0 + NS)
        _wait(lambda: len(outputs) == 2)
        assert not [c for c in session.calls if c[0] == "user"]  # 1.0 s < 1.2 s: still waiting
        stream.add_utterance("and the mug?", (T0 + NS // 10) / NS)  # said long ago
        stream.offer(15, T0 + 15 * NS // 10)
        _wait(lambda: len(outputs) == 3)
        users = [c for c in session.calls if c[0] == "user"]
        assert users == [("user", "where is the kettle?", said_at),
                         ("user", "and the mug?", (T0 + NS // 10) / NS)]
        assert session.calls.index(users[0]) < session.calls.index(("frame", 15, (T0 + 15 * NS // 10) / NS))
        assert not errors
    finally:
        stream.detach()


def test_stream_counts_decode_errors_and_keeps_going():
    session = FakeSession()
    stream, outputs, errors = _stream(session)
    try:
        stream.offer(-1, T0)
        _wait(lambda: stream.counters.values()["decode_errors"] == 1)
        stream.offer(3, T0 + NS)
        _wait(lambda: len(outputs) == 1)
        assert [str(e) for e in errors] == ["frame -1 is malformed"]
        assert session.calls == [("batch", 1), ("frame", 3, (T0 + NS) / NS)]
    finally:
        stream.detach()


def test_busy_worker_sees_only_the_newest_kept_frame():
    session = FakeSession(gate=threading.Event())
    stream, outputs, _ = _stream(session)
    try:
        stream.offer(1, T0)
        assert session.entered.wait(5)  # the worker is inside push_frame(frame 1)
        stream.offer(2, T0 + NS)        # kept, waits in the mailbox ...
        stream.offer(3, T0 + 2 * NS)    # ... and is replaced by this one
        session.gate.set()
        _wait(lambda: len(outputs) == 2)
        assert [c[1] for c in session.calls if c[0] == "frame"] == [1, 3]
        counts = stream.counters.values()
        assert counts["overwritten"] == 1 and counts["frames_dropped"] == 1
    finally:
        stream.detach()


def test_busy_worker_gets_the_backlog_in_order_with_catchup_depth():
    """Depth 3: frames kept while the worker is busy wait in order (oldest pushed out) and reach
    the session together, as one push_frames call."""
    session = FakeSession(gate=threading.Event())
    stream, outputs, _ = _stream(session, depth=3)
    try:
        stream.offer(1, T0)
        assert session.entered.wait(5)
        for k in range(2, 7):            # five kept frames arrive during the busy step
            stream.offer(k, T0 + (k - 1) * NS)
        session.gate.set()
        _wait(lambda: len(outputs) == 4)
        assert [c for c in session.calls if c[0] == "batch"] == [("batch", 1), ("batch", 3)]
        assert [c[1] for c in session.calls if c[0] == "frame"] == [1, 4, 5, 6]
        assert [o.job.stamp_ns for o in outputs] == [T0 + k * NS for k in (0, 3, 4, 5)]
        counts = stream.counters.values()
        assert counts["frames_processed"] == 4 and counts["frames_dropped"] == 2
    finally:
        stream.detach()


def test_disabled_stream_drops_and_stop_discards_pending():
    session = FakeSession(gate=threading.Event())
    stream, outputs, _ = _stream(session)
    stream.enabled = False
    assert not stream.offer(1, T0)
    stream.enabled = True
    stream.offer(2, T0 + NS)
    assert session.entered.wait(5)
    stream.offer(3, T0 + 2 * NS)  # waiting while the worker is busy
    session.gate.set()
    stream.stop()
    counts = stream.counters.values()
    assert counts["frames_received"] == 3
    assert counts["frames_processed"] + counts["frames_dropped"] == 3
    with pytest.raises(RuntimeError, match="not configured"):
        stream.detach() or stream.with_session(lambda s: s)
