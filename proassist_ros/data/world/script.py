"""The timeline: what the wearer's hands do and when each state changes, as a list of actions.

An action spans [t0, t1), holds the world state at t0 (copy-on-write snapshots, never mutated) and
the hand's way-points (phases). Its effects become true at t1, which for a step is the moment
the step *visibly completes* (the cup is full, the lid is on, the leg is in). Renderer, captions
and dialogue all read this one timeline, so they agree by construction.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from .catalog import StepDef, TaskDef
from .layout import MOUTH, REST_R, Thing, hand_for, slot_offset

CLOSABLE = ("box", "jar", "flashlight")
PRESS_AT = {"kettle": (26, 30), "hob": (62, 62), "lampbase": (30, 30), "flashlight": (62, 0)}
HELP = ("cut", "spread", "open", "screw", "flip")


@dataclass
class Phase:
    t1: float
    x: float
    y: float
    name: str                      # reach | move | act | rest | hover | back
    hold: bool = False             # the carried object moves with the hand


@dataclass
class Action:
    t0: float
    t1: float
    kind: str                      # idle | hesitate | step | mistake | fix | return | reset
    state: dict
    hand0: tuple[float, float]
    phases: list[Phase]
    step: int = -1
    round: int = 0
    target: str = ""
    carry: str = ""
    motion: str = ""
    ing: str = ""
    effects: tuple = ()
    help: tuple[float, float] | None = None
    hover: tuple[str, ...] = ()


@dataclass
class Timeline:
    actions: list[Action]
    final: dict
    steps: list[dict] = field(default_factory=list)
    mistakes: list[dict] = field(default_factory=list)
    lookaways: list[tuple[float, float]] = field(default_factory=list)
    orders: list[tuple[int, ...]] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)   # {"round", "t_ready"}: table in view again
    end: float = 0.0

    def __post_init__(self) -> None:
        self._t0 = [a.t0 for a in self.actions]

    def action_at(self, t: float) -> Action:
        return self.actions[max(0, bisect.bisect_right(self._t0, t) - 1)]

    def state_at(self, t: float) -> dict:
        a = self.action_at(t)
        return self.final if t >= a.t1 else a.state


def position(state: dict, oid: str) -> tuple[float, float]:
    """Absolute table position of a thing (following the containers it is in)."""
    s = state[oid]
    if s["at"]:
        cx, cy = position(state, s["at"])
        return cx + s["off"][0], cy + s["off"][1]
    return s["pos"]


def hidden(state: dict, things: dict[str, Thing], oid: str) -> bool:
    """Not visible: gone, inside a closed box, or under a stool turned upright."""
    s = state[oid]
    if s.get("gone"):
        return True
    c = s["at"]
    while c:
        cs = state[c]
        if (things[c].kind in CLOSABLE and not cs.get("open", True)) or cs.get("upright"):
            return True
        c = cs["at"]
    return False


def accessible(state: dict, things: dict[str, Thing], oid: str) -> bool:
    """Can be picked up: visible and not screwed into something."""
    s = state[oid]
    return not hidden(state, things, oid) and not (s["at"] and things[s["at"]].kind in ("seat", "lampbase"))


def apply(state: dict, effects, initial: dict) -> dict:
    """A new state with the effects applied (copy-on-write: unchanged objects are shared)."""
    new = dict(state)
    for oid, attr, value in effects:
        if oid == "*":
            return dict(initial)
        o = dict(new[oid])
        if attr == "place":                    # value = (container, offset, z)
            o.update(at=value[0], off=value[1], z=value[2], pos=None)
        elif attr == "restore":                # value = the dict of a previous location
            o.update(value)
        else:
            o[attr] = value
        new[oid] = o
    return new


class Builder:
    """Appends actions in time order while tracking the world state and the right hand."""

    def __init__(self, task: TaskDef, things: dict[str, Thing], state: dict, rng: np.random.Generator):
        self.task, self.things, self.rng = task, things, rng
        self.initial, self.state = state, state
        self.t, self.hand, self.z = 0.0, REST_R, 100
        self.actions: list[Action] = []
        self.lookaways: list[tuple[float, float]] = []

    def emit(self, kind: str, dur: float, phases: list[tuple[float, tuple, str, bool]],
             effects=(), **kw) -> Action:
        """phases: (seconds, point, name, hold); the last phase ends exactly at t0 + dur."""
        t0, acc, out = self.t, 0.0, []
        for i, (sec, (x, y), name, hold) in enumerate(phases):
            acc = dur if i == len(phases) - 1 else acc + sec
            out.append(Phase(t0 + acc, float(x), float(y), name, hold))
        a = Action(t0, t0 + dur, kind, self.state, self.hand, out, effects=tuple(effects), **kw)
        self.actions.append(a)
        self.t, self.hand = a.t1, (out[-1].x, out[-1].y)
        self.state = apply(self.state, a.effects, self.initial)
        return a

    def pos(self, oid: str) -> tuple[float, float]:
        return position(self.state, oid)

    def idle(self, dur: float, look_p: float = 0.0) -> None:
        rest = (REST_R[0] + self.rng.uniform(-25, 25), REST_R[1] + self.rng.uniform(-15, 10))
        self.emit("idle", dur, [(min(1.5, dur * 0.5), rest, "rest", False), (0, rest, "rest", False)])
        if dur >= 4.5 and self.rng.random() < look_p:
            length = min(self.rng.uniform(1.5, 4.0), dur - 2.5)
            a = self.t - dur + self.rng.uniform(1.0, dur - 1.5 - length)
            self.lookaways.append((a, a + length))

    def hesitate(self, a: str, b: str) -> None:
        pa, pb = self.pos(a), self.pos(b)
        hov = [(pa[0] + 10, pa[1] + 45), (pb[0] + 10, pb[1] + 45)]
        n = int(self.rng.integers(2, 4))
        ph = [(self.rng.uniform(0.9, 1.6), hov[k % 2], "hover", False) for k in range(n)]
        self.emit("hesitate", sum(p[0] for p in ph), ph, hover=(a, b))

    def do(self, sd: StepDef, kind: str, step: int, rnd: int, dur: float, carry: str = "",
           effects=None, ing: str = "", dest: tuple | None = None) -> Action:
        """One hand action: reach, (carry to the target), act; effects at the end."""
        rng, carry = self.rng, carry or sd.carry
        effects = list(sd.effects if effects is None else effects)
        tpos = self.pos(sd.target)
        reach = min(rng.uniform(1.2, 2.2), 0.3 * dur)
        help_at = (tpos[0] - 75, tpos[1] + 28) if sd.motion in HELP else None
        if sd.motion == "wait":
            rest = (REST_R[0] + rng.uniform(-30, 10), REST_R[1] - rng.uniform(0, 20))
            phases = [(1.5, rest, "rest", False), (0, rest, "act", False)]
            carry = ""
        elif carry:
            move = min(rng.uniform(1.2, 2.4), 0.3 * dur)
            if dest is None:
                dest = self.dest_point(sd, tpos)
            if sd.put in ("in", "on") and not any(e[1] == "restore" for e in effects):
                off = slot_offset(self.things[sd.target], sd.slot, rng)
                self.z += 1
                effects.append((carry, "place", (sd.target, off, self.z)))
                dest = (tpos[0] + off[0], tpos[1] + off[1])
            dest = hand_for(dest)
            phases = [(reach, hand_for(self.pos(carry)), "reach", False), (move, dest, "move", True),
                      (0, dest, "act", True)]
        else:
            dx, dy = PRESS_AT.get(self.things[sd.target].kind, (0, 18))
            size = self.things[sd.target].size
            pt = (tpos[0] + dx * size, tpos[1] + dy * size)
            phases = [(reach, pt, "reach", False), (0, pt, "act", False)]
        return self.emit(kind, dur, phases, effects, step=step, round=rnd, target=sd.target,
                         carry=carry, motion=sd.motion, ing=ing or sd.ing, help=help_at)

    def dest_point(self, sd: StepDef, tpos: tuple[float, float]) -> tuple[float, float]:
        if sd.motion == "drink":
            return MOUTH
        dx, dy = {"pour": (-62, -46), "shake": (-26, -34), "screw": (22, 18)}.get(sd.motion, (0, 0))
        return tpos[0] + dx, tpos[1] + dy

    def put_back(self, carry: str, rnd: int) -> None:
        """After pouring/cutting/stirring: the carried thing goes back where it was."""
        home = hand_for(self.pos(carry))
        dur = float(self.rng.uniform(1.0, 2.0))
        self.emit("return", dur, [(dur * 0.8, home, "back", True), (0, home, "back", False)],
                  carry=carry, round=rnd, ing=f"putting the {self.things[carry].noun} back")
