"""The episode plan: rounds of the recipe, idles, hesitations, look-aways and (maybe) one mistake.

Mistakes are reversible so that the wearer can visibly fix them after the correction:
- wrong order: a later step marked ``early`` (a toggle or a placement) is done before its turn;
  the fix undoes it (switch the kettle off again, take the lid off again);
- wrong object: a placement step is done with a confuser (the old battery instead of a new one);
  the fix takes it out again. Either way the expected step is then done properly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .catalog import StepDef, TaskDef, lower_first
from .layout import Thing
from .script import Builder, Timeline, accessible, apply, position

LONG_S = 600.0


def _duration(rng: np.random.Generator, sd: StepDef, speed: float, long: bool) -> float:
    d = rng.uniform(*sd.dur) * speed * (rng.uniform(1.0, 1.35) if long else 1.0)
    return float(np.clip(d, 5.0, 40.0))


def candidates(task: TaskDef, things: dict[str, Thing], state: dict, order, pos: int) -> list:
    """Feasible mistakes when step order[pos] is due: ("wrong_order", j) / ("wrong_object", oid)."""
    i, out = order[pos], []
    for j in order[pos + 1:]:
        sj = task.steps[j]
        if not sj.early or sj.group == task.steps[i].group:
            continue
        if sj.carry:
            if sj.put in ("in", "on") and accessible(state, things, sj.carry) and \
                    state[sj.carry]["at"] != sj.target and accessible(state, things, sj.target):
                out.append(("wrong_order", j))
        elif any(state[o][a] != v for o, a, v in sj.effects):
            out.append(("wrong_order", j))
    for ci, wrong in task.confusers:
        if ci == i and accessible(state, things, wrong) and state[wrong]["at"] != task.steps[i].target:
            out.append(("wrong_object", wrong))
    return out


def _dry_run(task: TaskDef, things, state: dict, order) -> list[int]:
    """Positions in this round where some mistake is feasible (state simulated step by step)."""
    feasible = []
    for pos, i in enumerate(order):
        if candidates(task, things, state, order, pos):
            feasible.append(pos)
        sd = task.steps[i]
        eff = list(sd.effects)
        if sd.carry and sd.put in ("in", "on"):
            eff.append((sd.carry, "place", (sd.target, (0.0, 0.0), 0)))
        state = apply(state, eff, state)
    return feasible


def _undo_phrase(task: TaskDef, things: dict[str, Thing], sd: StepDef, carry: str, old: list) -> tuple[str, str]:
    if carry:
        prep = "out of" if sd.put == "in" else "off"
        what = f"the {things[carry].noun} {prep} the {things[sd.target].noun}"
        return f"take {what}", f"taking {what}"
    oid, attr, value = old[0]
    inverse = [s for s in task.steps if s.motion != "wait" and (oid, attr, value) in s.effects]
    if inverse:                                # the recipe's own words: "open the battery cover"
        return f"{lower_first(inverse[0].text)} again", inverse[0].ing
    noun = things[oid].noun
    if attr == "open":
        verb, ing = ("open", "opening") if value else ("close", "closing")
        return f"{verb} the {noun} again", f"{ing} the {noun}"
    word = "on" if value else "off"
    return f"switch the {noun} {word} again", f"switching the {noun} {word}"


def _mistake(b: Builder, task: TaskDef, kind: str, arg, i: int, rnd: int, dur: float) -> dict:
    rng, things = b.rng, b.things
    sd = task.steps[arg] if kind == "wrong_order" else task.steps[i]
    carry = (sd.carry if sd.put in ("in", "on") else "") if kind == "wrong_order" else arg
    old = [(o, a, b.state[o][a]) for o, a, _ in sd.effects]
    if carry:
        s = b.state[carry]
        prior = {"at": s["at"], "off": s["off"], "pos": s["pos"], "z": s["z"]}
        home = position(b.state, carry)
    if kind == "wrong_object":
        prep = "into" if sd.put == "in" else "onto"
        a = b.do(sd, "mistake", i, rnd, dur, carry=carry, effects=[],
                 ing=f"putting the {things[carry].noun} {prep} the {things[sd.target].noun}")
    else:
        a = b.do(sd, "mistake", arg, rnd, dur)
    undo, undo_ing = _undo_phrase(task, things, sd, carry, old)
    b.idle(float(rng.uniform(2.5, 4.0)))
    fix_dur = float(rng.uniform(4.0, 9.0))
    if carry:
        fsd = StepDef("", "", "", undo_ing, sd.target, carry=carry, motion="place")
        f = b.do(fsd, "fix", i, rnd, fix_dur, effects=[(carry, "restore", prior)], dest=home)
    else:
        fsd = StepDef("", "", "", undo_ing, sd.target, motion=sd.motion)
        f = b.do(fsd, "fix", i, rnd, fix_dur, effects=old)
    b.idle(float(rng.uniform(2.0, 3.5)))
    return {"type": kind, "step": i, "did": arg if kind == "wrong_order" else carry, "round": rnd,
            "t_start": a.t0, "t_end": a.t1, "fix_start": f.t0, "fix_end": f.t1, "undo": undo,
            "ing": a.ing, "objects": [carry] if carry else [o for o, _, _ in old]}


def _reset(b: Builder, rnd: int) -> dict:
    """Between rounds: look away, the finished things are swapped for fresh ones, look back."""
    rng = b.rng
    away = b.t + float(rng.uniform(0.3, 0.8))
    b.idle(float(rng.uniform(2.0, 3.0)))
    b.actions[-1].kind, b.actions[-1].effects = "reset", (("*", "reset", None),)
    b.state = b.initial
    back = b.t + float(rng.uniform(1.0, 2.5))
    b.lookaways.append((away, back))
    b.idle(back - b.t + float(rng.uniform(2.5, 4.0)))
    return {"round": rnd, "t_ready": back}


def build(task: TaskDef, things: dict[str, Thing], state: dict, rng: np.random.Generator,
          order_for_round: Callable[[int], tuple[int, ...]], long: bool, mistake: bool) -> Timeline:
    b = Builder(task, things, state, rng)
    speed = float(rng.uniform(0.85, 1.25))
    b.idle(float(rng.uniform(4.0, 6.0)))
    steps, mistakes, orders, rounds = [], [], [], [{"round": 0, "t_ready": 0.0}]
    m_round = int(rng.integers(0, 2)) if long else 0
    rnd = 0
    while True:
        order = order_for_round(rnd)
        orders.append(order)
        if rnd > 0:
            rounds.append(_reset(b, rnd))
        m_pos = None
        if mistake and rnd == m_round:
            feasible = _dry_run(task, things, b.state, order)
            m_pos = feasible[int(rng.integers(len(feasible)))] if feasible else None
        for pos, i in enumerate(order):
            sd = task.steps[i]
            if rng.random() < 0.15:
                others = [o for o in things if o != (sd.carry or sd.target) and not things[o].distractor
                          and accessible(b.state, things, o)]
                if others:
                    b.hesitate(sd.carry or sd.target, others[int(rng.integers(len(others)))])
            if pos == m_pos:
                cand = candidates(task, things, b.state, order, pos)
                kind, arg = cand[int(rng.integers(len(cand)))]
                mistakes.append(_mistake(b, task, kind, arg, i, rnd, _duration(rng, sd, speed, long)))
            a = b.do(sd, "step", i, rnd, _duration(rng, sd, speed, long))
            steps.append({"step": i, "round": rnd, "t_start": a.t0, "t_end": a.t1})
            if sd.put == "back":
                b.put_back(a.carry, rnd)
            last = pos == len(order) - 1
            if not last:
                short = rng.random() < (0.6 if long else 0.8)
                gap = rng.uniform(4, 20) if long and short else rng.uniform(20, 60) if long else \
                    rng.uniform(1.0, 5.0) if short else rng.uniform(5.0, 12.0)
                b.idle(float(gap), look_p=0.5 if long else 0.35)
        rnd += 1
        if not long or b.t >= LONG_S or rnd >= 16:
            break
    b.idle(float(rng.uniform(3.0, 6.0)))
    return Timeline(b.actions, b.state, steps, mistakes, b.lookaways, orders, rounds, b.t)
