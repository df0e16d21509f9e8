"""Per-frame captions for vision pre-training: visible things, their states, the hands' action.

One caption per frame (at each frame's time). Only what the frame shows is said: things whose
centre the camera sees, their drawn states ("a red kettle (full of water, switched on)"), what
lies in/on them, and the action as the hands show it (reaching, carrying, pouring, resting).
During a look-away the caption says only that the camera is turned away.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..episode import Caption
from .catalog import article, number
from .layout import Thing
from .motion import Scene, scene_at
from .script import Timeline, hidden

FILL_WORDS = {"empty": "empty", "water": "full of water", "hot water": "full of hot water",
              "tea": "full of tea", "strong tea": "full of strong tea",
              "coffee grounds": "with coffee grounds in it", "coffee": "full of black coffee",
              "coffee with milk": "with coffee and a swirl of milk", "stirred coffee": "full of milky coffee",
              "cereal": "with cereal in it", "cereal with milk": "with cereal and milk in it",
              "boiling water": "full of boiling water", "pasta": "with pasta in the water",
              "stirred pasta": "with stirred pasta in it", "half": "half full of water"}
IN_KINDS = ("cup", "bowl", "box", "jar", "pot", "flashlight", "glass")
FLAGS = {"dressed": "dressed with oil", "salted": "salted", "mixed": "tossed", "buttered": "buttered",
         "tight": "with the screws tightened", "wet": "watered", "dead": "with a dead brown leaf"}


def state_words(th: Thing, st: dict) -> list[str]:
    words = []
    if "fill" in st:
        words.append(FILL_WORDS[st["fill"]])
    if "open" in st:
        words.append("open" if st["open"] else "closed")
    if "on" in st:
        words.append("switched on" if st["on"] else "switched off")
    if "cut" in st:
        words.append(("cut in half" if th.kind == "bread" else "sliced") if st["cut"] else "whole")
    if th.kind == "plant" and not st.get("wet"):
        words.append("with dry soil")
    if th.kind == "seat":
        words.append("standing upright" if st.get("upright") else "upside down")
    words += [w for k, w in FLAGS.items() if st.get(k)]
    return words


def _noun(th: Thing, st: dict) -> str:
    if th.kind == "seat" and st.get("upright"):
        return "stool"
    return f"{th.colour} {th.noun}" if th.colour else th.noun


def plural(noun: str) -> str:
    head, sep, tail = noun.partition(" of ")
    if sep:
        return plural(head) + sep + tail
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("ch", "sh", "s")) else "s")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe(sc: Scene, things: dict[str, Thing], oid: str, kids: dict[str, list[str]]) -> str:
    """"a white bowl (dressed with oil) with a tomato (sliced) and a cucumber (sliced) in it"."""
    th, st = things[oid], sc.state[oid]
    inside = [k for k in kids.get(oid, ()) if not hidden(sc.state, things, k) and k != sc.carried]
    text = article(_noun(th, st))
    words = [w for w in state_words(th, st) if not (inside and w == "empty")]
    if words:
        text += f" ({', '.join(words)})"
    if inside:
        descs = {k: describe(sc, things, k, kids) for k in inside}
        counts = Counter(descs.values())
        parts = []
        for k in inside:
            d, c = descs[k], counts[descs[k]]
            if c > 1:
                d = f"{number(c)} " + d.split(" ", 1)[1].replace(things[k].noun, plural(things[k].noun), 1)
            if d not in parts:
                parts.append(d)
        prep = "in" if th.kind in IN_KINDS else "on"
        text += f" with {_join(parts)} {prep} it"
    return text


def action_words(sc: Scene, things: dict[str, Thing]) -> str:
    a, noun = sc.action, (lambda o: things[o].noun)
    if a.kind in ("idle", "reset") or a.motion == "wait":
        tail = f" while {a.ing}" if a.motion == "wait" and a.kind != "idle" else ""
        return f"the hands are resting near the edge of the table{tail}"
    if a.kind == "hesitate":
        return f"the hand hovers between the {noun(a.hover[0])} and the {noun(a.hover[1])}"
    if a.kind == "return":
        return f"the hand is putting the {noun(a.carry)} back" if sc.carried else \
            f"the hand lets go of the {noun(a.carry)}"
    if sc.phase == "reach":
        return f"the hand is reaching for the {noun(a.carry or a.target)}"
    if sc.phase == "move":
        if a.motion == "drink":
            return f"the hand is lifting the {noun(a.carry)}"
        return f"the hand is carrying the {noun(a.carry)} to the {noun(a.target)}"
    return f"the hand is {a.ing}"


def caption(sc: Scene, things: dict[str, Thing], seen: set[str], away: bool) -> str:
    if away:
        return "The camera is turned away from the table."
    state = sc.state
    kids: dict[str, list[str]] = {}
    for o in sorted(state, key=lambda o: state[o]["z"]):
        if state[o]["at"]:
            kids.setdefault(state[o]["at"], []).append(o)
    tops = [o for o in state if not state[o]["at"] and o in seen and o != sc.carried
            and not hidden(state, things, o)]
    tops.sort(key=lambda o: sc.pos(o)[0])
    objs = ", ".join(describe(sc, things, o, kids) for o in tops) or "nothing"
    held = f"; the hand holds {describe(sc, things, sc.carried, kids)}" if sc.carried else ""
    return f"On the table: {objs}{held}; {action_words(sc, things)}."


def captions(tl: Timeline, things: dict[str, Thing], times: np.ndarray, homographies) -> list[Caption]:
    """``homographies(t_array)`` -> (n, 3, 3) table-to-image maps normalised to a unit image."""
    Hs = homographies(times)
    out = []
    for t, H in zip(times, Hs):
        sc = scene_at(tl, float(t))
        ids = list(sc.state)
        pts = np.array([sc.pos(o) for o in ids] + [(480.0, 380.0)], np.float64)
        proj = pts @ H[:, :2].T + H[:, 2]
        uv = proj[:, :2] / proj[:, 2:3]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= 1)
        seen = {o for o, ok in zip(ids, inside[:-1]) if ok}
        out.append(Caption(round(float(t), 6), caption(sc, things, seen, away=not inside[-1])))
    return out
