"""Where the hands and the carried thing are at time t: the scene the renderer draws.

Hands move between an action's way-points on smooth-step curves and, while acting, add the
motion's own rhythm (cutting strokes, stirring circles, a shaker's shake), faded in and out so
there are no jumps. Everything is a pure function of t, so any frame can be drawn alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .layout import REST_L, held_at
from .script import Action, Timeline

# motion -> (ax, fx, ay, fy, circular): amplitude (units) and frequency (Hz) of the act rhythm
RHYTHM = {
    "pour": (3, 0.5, 2, 0.7, False), "cut": (22, 1.3, 2, 2.6, False), "spread": (18, 0.9, 8, 1.8, False),
    "stir": (14, 0.9, 14, 0.9, True), "shake": (0, 1, 8, 3.0, False), "screw": (6, 1.5, 6, 1.5, True),
    "open": (0, 1, 10, 0.6, False), "press": (0, 1, 4, 1.0, False), "flip": (10, 0.5, 0, 1, False),
    "place": (3, 0.8, 0, 1, False), "drink": (0, 1, 2, 0.5, False), "wait": (4, 0.2, 3, 0.15, False),
}
GRIP_MOTIONS = ("press", "open", "flip", "screw")


@dataclass
class Scene:
    t: float
    action: Action
    state: dict
    phase: str
    hand: tuple[float, float]
    grip: bool                     # closed hand: holding or pressing
    carried: str                   # oid moving with the hand ("" if none)
    left: tuple[float, float]
    left_grip: bool

    def pos(self, oid: str) -> tuple[float, float]:
        """Position of a thing now: carried things (and what is in them) follow the hand."""
        if oid == self.carried:
            return held_at(self.hand)
        s = self.state[oid]
        if s["at"]:
            cx, cy = self.pos(s["at"])
            return cx + s["off"][0], cy + s["off"][1]
        return s["pos"]

    def holds(self, oid: str) -> bool:
        """The thing or a container it is in is in the hand."""
        while oid:
            if oid == self.carried:
                return True
            oid = self.state[oid]["at"]
        return False

    @property
    def pouring(self) -> bool:
        return self.action.motion == "pour" and self.phase == "act" and bool(self.carried)


def _smooth(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


def _ease_out(u: float) -> float:
    """Leaving a finished step: fast at first, so the result is soon in view."""
    u = min(1.0, max(0.0, u))
    return 1 - (1 - u) ** 2


def _rhythm(motion: str, t: float, env: float) -> tuple[float, float]:
    ax, fx, ay, fy, circ = RHYTHM.get(motion, (0, 1, 0, 1, False))
    if circ:
        return env * ax * math.cos(2 * math.pi * fx * t), env * ay * math.sin(2 * math.pi * fy * t)
    return env * ax * math.sin(2 * math.pi * fx * t), env * ay * math.sin(2 * math.pi * fy * t + 0.7)


def hand_at(a: Action, t: float) -> tuple[float, float, str, bool]:
    """(x, y, phase name, holding) of the right hand at time t within action a."""
    (px, py), tp = a.hand0, a.t0
    for ph in a.phases:
        if t < ph.t1 or ph is a.phases[-1]:
            ease = _ease_out if ph.name in ("back", "rest") else _smooth
            e = ease((t - tp) / max(1e-6, ph.t1 - tp))
            x, y = px + (ph.x - px) * e, py + (ph.y - py) * e
            if ph.name in ("act", "rest"):
                env = min(1.0, (t - tp) / 0.6, max(0.0, ph.t1 - t - 0.3) / 0.8)
                dx, dy = _rhythm(a.motion if ph.name == "act" else "wait", t, max(0.0, env))
                x, y = x + dx, y + dy
            x += 1.5 * math.sin(2 * math.pi * 1.7 * t)
            y += 1.5 * math.sin(2 * math.pi * 2.3 * t + 1.0)
            return x, y, ph.name, ph.hold
        (px, py), tp = (ph.x, ph.y), ph.t1
    raise AssertionError("unreachable: an action has at least one phase")


def _left(a: Action, t: float, phase: str) -> tuple[tuple[float, float], bool]:
    x = REST_L[0] + 5 * math.sin(2 * math.pi * 0.13 * t + 2.0)
    y = REST_L[1] + 4 * math.sin(2 * math.pi * 0.11 * t)
    if a.help is None or phase != "act":
        return (x, y), False
    idx = [p.name for p in a.phases].index("act")
    t_act = a.phases[idx - 1].t1 if idx > 0 else a.t0
    w = _smooth(min((t - t_act) / 1.0, (a.t1 - t) / 0.8))
    hx, hy = a.help
    return (x + (hx - x) * w, y + (hy - y) * w), w > 0.5


def scene_at(tl: Timeline, t: float) -> Scene:
    a = tl.action_at(t)
    if t >= a.t1:                                   # after the end: everything at rest
        hx, hy, phase, hold = a.phases[-1].x, a.phases[-1].y, "rest", False
        state = tl.final
    else:
        hx, hy, phase, hold = hand_at(a, t)
        state = a.state
    carried = a.carry if hold and a.carry and t < a.t1 else ""
    left, left_grip = _left(a, t, phase)
    grip = bool(carried) or (phase == "act" and a.motion in GRIP_MOTIONS)
    return Scene(t, a, state, phase, (hx, hy), grip, carried, left, left_grip)
