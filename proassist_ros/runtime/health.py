"""Counters and the health verdict of the assistant node (ROS-free).

The node's executor callbacks and its worker thread both count; :class:`StreamCounters` makes
that safe. :func:`assess` turns two successive snapshots into a diagnostics level and message, so
the rules ("falling behind", "QoS incompatible", "decode errors rising") are testable without
DDS and stay in one place.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

from proassist_ros.runtime.stages import STAGES, StageSummary

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes there)


@dataclass(frozen=True)
class StatsSnapshot:
    """Everything AssistantStats and /diagnostics report, at one instant."""

    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0
    overwritten: int = 0              # part of frames_dropped: replaced in the mailbox
    incompatible_qos_events: int = 0
    summaries_triggered: int = 0
    frames_caught_up: int = 0         # part of frames_processed: older backlog frames, fed silently
    inference_p50_s: float = 0.0
    inference_p95_s: float = 0.0
    real_time_factor: float = 0.0
    input_rate_hz: float = 0.0
    context_tokens: int = 0
    active: bool = False
    enabled: bool = True
    seconds_since_qos_event: float = float("inf")
    # image_reliability auto: incompatible-QoS events up to the last re-subscription were
    # resolved by it (a best-effort camera appearing while subscribed reliable), not a problem.
    qos_events_resolved: int = 0
    camera_qos: str = ""              # the camera subscription's reliability and why
    camera_publishers: int = 0        # publishers the camera subscription has matched (its side)
    stages: StageSummary = field(default_factory=StageSummary)  # where the time goes (stages.py)


class StreamCounters:
    """Monotonic counters shared by callbacks and the worker (lock-protected increments)."""

    FIELDS = ("frames_received", "frames_processed", "frames_dropped", "decode_errors",
              "overwritten", "incompatible_qos_events", "summaries_triggered", "frames_caught_up")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.FIELDS, 0)

    def add(self, **increments: int) -> None:
        """Add to one or more counters at once."""
        with self._lock:
            for name, inc in increments.items():
                self._values[name] += inc

    def restore(self, values: dict[str, int]) -> None:
        """Continue from saved counters (a resumed session); unknown names are ignored."""
        with self._lock:
            for name in self.FIELDS:
                if isinstance(values.get(name), int):
                    self._values[name] = values[name]

    def values(self) -> dict[str, int]:
        """A consistent copy of all counters."""
        with self._lock:
            return dict(self._values)


def snapshot(counters: StreamCounters, **rest: float | bool) -> StatsSnapshot:
    """A :class:`StatsSnapshot` from the counters plus the measured figures in ``rest``."""
    return StatsSnapshot(**counters.values(), **rest)


def assess(now: StatsSnapshot, before: StatsSnapshot | None,
           qos_warn_window_s: float = 30.0, latency_warn_s: float = 3.0) -> tuple[int, str]:
    """Diagnostics level and message for ``now``, given the previous period's ``before``."""
    before = before or StatsSnapshot()
    if not now.active:
        return OK, "inactive"
    if not now.enabled:
        return OK, "disabled (enable service)"
    problems = []
    slowest = now.stages.slowest
    if now.real_time_factor > 1.0 or now.overwritten > before.overwritten:
        problems.append(f"falling behind the camera (real-time factor {now.real_time_factor:.2f},"
                        f" {now.overwritten - before.overwritten} frames replaced before inference"
                        + (f"; slowest frame {slowest.describe()}" if slowest else "") + ")")
    elif slowest is not None and slowest.latency_s > latency_warn_s:
        problems.append(f"frames wait: slowest frame {slowest.describe()}")
    unresolved = now.incompatible_qos_events > now.qos_events_resolved
    if unresolved and (now.seconds_since_qos_event < qos_warn_window_s
                       or now.input_rate_hz == 0.0):
        problems.append(f"{now.incompatible_qos_events} incompatible-QoS event(s) on the camera "
                        "topic (check image_reliability against the publisher)")
    if now.decode_errors > before.decode_errors:
        problems.append(f"{now.decode_errors - before.decode_errors} frame(s) failed to decode")
    if problems:
        return WARN, "; ".join(problems)
    if now.input_rate_hz == 0.0:
        return OK, "waiting for camera frames"
    return OK, f"ok ({now.input_rate_hz:.1f} Hz in, {now.frames_processed} frames processed)"


def key_values(snap: StatsSnapshot) -> list[tuple[str, str]]:
    """Every field of ``snap`` as (key, text) pairs for DiagnosticStatus.values.

    The stage summary becomes ``latency_p50_s``, ``latency_max_s``, ``stage_<name>_p50_s`` /
    ``_max_s`` per stage, and ``slowest_frame`` ('3.10 s: queue 1.60 s, reply 1.20 s').
    """
    pairs = []
    for f in dataclasses.fields(snap):
        if f.name == "stages":
            continue
        value = getattr(snap, f.name)
        pairs.append((f.name, _text(value)))
    st = snap.stages
    pairs += [("latency_p50_s", _text(st.latency_p50_s)), ("latency_max_s", _text(st.latency_max_s))]
    for name, p50, top in zip(STAGES, st.stage_p50_s, st.stage_max_s, strict=True):
        pairs += [(f"stage_{name}_p50_s", _text(p50)), (f"stage_{name}_max_s", _text(top))]
    pairs.append(("slowest_frame", st.slowest.describe() if st.slowest else ""))
    return pairs


def _text(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
