"""Scene geometry and set-up: where things lie on the table, how big they are, what colour.

All positions are in *table units*: the table plane is a 960 x 720 canvas (units), drawn at
``size[0] / 640`` pixels per unit and seen through a fixed perspective (``VIEW_QUAD`` maps to the
image corners: the far edge is wider in the plane, so it looks smaller, as from a head camera
tilted down at the table). Task objects go where the model's centre crop sees them; distractors
go to the sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .catalog import COLOURS, PALETTES, TaskDef

CANVAS = (960, 720)
# canvas points that land on the image corners (top-left, top-right, bottom-right, bottom-left)
VIEW_QUAD = ((165.0, 150.0), (795.0, 150.0), (690.0, 610.0), (270.0, 610.0))
REST_R, REST_L, MOUTH = (640.0, 590.0), (320.0, 600.0), (470.0, 628.0)
ARM_R, ARM_L = (730.0, 830.0), (230.0, 830.0)   # where the arms enter (below the image)
TASK_Y = (172.0, 555.0)                          # depth range for task objects
GRIP = 40.0                                      # palm centre -> held thing (units)

# footprint radius (units) of each kind, for placing things without overlap
FOOTPRINT = {
    "kettle": 56, "jug": 42, "cup": 40, "box": 60, "plate": 60, "jar": 44, "spoon": 36, "carton": 38,
    "bowl": 62, "board": 96, "banana": 44, "knife": 50, "shaker": 18, "tomato": 26, "cucumber": 36,
    "bottle": 24, "lemon": 22, "apple": 24, "hob": 82, "pot": 72, "lid": 52, "bread": 40,
    "butter": 38, "cheese": 32, "lettuce": 34, "ham": 32, "seat": 92, "leg": 58, "ring": 60,
    "screwdriver": 48, "bracket": 30, "lampbase": 52, "pole": 58, "bulb": 22, "shade": 62,
    "socket": 58, "plug": 18, "flashlight": 92, "battery": 30, "tray": 80, "plant": 44,
    "wateringcan": 56, "scissors": 36, "glass": 28, "pill": 10, "sweet": 18, "teabag": 16,
    "biscuit": 18, "book": 62, "phone": 42, "keys": 28, "remote": 46, "glasses": 40, "wallet": 38,
}
BOX_SIZE = {"tea": (80, 56), "cereal": (96, 66), "pasta": (100, 50), "pills": (62, 42)}
# named places inside containers (units, scaled by the container's size)
SLOTS = {
    "seat": {"fl": (-46, 46), "fr": (46, 46), "bl": (-46, -46), "br": (46, -46), "centre": (0, 0)},
    "flashlight": {"s1": (-14, -11), "s2": (-14, 11)},
    "tray": {"left": (-50, 0), "right": (50, 0)},
    "board": {"left": (-42, 0), "right": (42, 0)},
    "plate": {"a": (-15, 2), "b": (16, -2), "up": (3, -3)},
    "bowl": {"left": (-15, 5), "right": (15, -4), "edge": (28, -22)},
    "socket": {"s1": (-30, 0)},
}
DISTRACTORS = ("book", "phone", "keys", "remote", "glasses", "wallet")
DISTRACTOR_NOUNS = {"keys": "bunch of keys", "glasses": "pair of glasses", "remote": "remote control"}
WOOD_TABLE = (((168, 128, 88), (190, 160, 120), (140, 100, 70)), ((150, 150, 150),))
SKIN = ((230, 190, 160), (200, 150, 115), (160, 110, 80), (120, 80, 55))
SLEEVES = (("navy", "grey", "green", "red", "black"), ("turquoise", "pink"))


def _unit_from_arm(x: float, y: float) -> tuple[float, float]:
    dx, dy = x - ARM_R[0], y - ARM_R[1]
    n = math.hypot(dx, dy) or 1.0
    return dx / n, dy / n


def held_at(hand: tuple[float, float]) -> tuple[float, float]:
    """A held thing sits at the fingertips, ahead of the palm (so the palm does not hide it)."""
    ux, uy = _unit_from_arm(*hand)
    return hand[0] + ux * GRIP, hand[1] + uy * GRIP


def hand_for(thing_at: tuple[float, float]) -> tuple[float, float]:
    """Where the hand goes so that what it holds (or is about to grasp) is at ``thing_at``."""
    ux, uy = _unit_from_arm(*thing_at)
    return thing_at[0] - ux * GRIP, thing_at[1] - uy * GRIP


@dataclass
class Thing:
    """One object's appearance for this episode (fixed for the whole video)."""

    oid: str
    kind: str
    noun: str
    colour: str                    # "" when the kind has its own natural colour
    rgb: tuple[int, int, int]
    size: float
    layer: int
    distractor: bool = False
    unseen: bool = False           # a test-only colour
    angle: float = 0.0             # orientation on the table (degrees), for long things


def slot_offset(container: Thing, slot: str, rng: np.random.Generator) -> tuple[float, float]:
    """Where a thing put in/on ``container`` lies, relative to the container's centre."""
    table = SLOTS.get(container.kind, {})
    if slot in table:
        dx, dy = table[slot]
    else:
        dx, dy = rng.uniform(-6, 6), rng.uniform(-6, 6)
    return (dx * container.size, dy * container.size)


def _xrange(y: float, crop: bool) -> tuple[float, float]:
    """x extent of the seen table at depth y (whole view, or the model's square centre crop).

    The view quad is a symmetric trapezoid, so each image row is a line of constant y on the
    table and x maps linearly along it.
    """
    (x0, y0), (x1, _), (x2, y2), (x3, _) = VIEW_QUAD
    f = (y - y0) / (y2 - y0)
    half = ((x1 - x0) + ((x2 - x3) - (x1 - x0)) * f) / 2
    half *= 0.75 if crop else 0.97             # a 4:3 frame's centre square is 3/4 of its width
    return CANVAS[0] / 2 - half, CANVAS[0] / 2 + half


def _place(rng: np.random.Generator, r: float, placed: list, zone: str) -> tuple[float, float]:
    for attempt in range(600):
        crop = zone == "task" and attempt < 400
        y = rng.uniform(TASK_Y[0] + r * 0.7, TASK_Y[1] - r * 0.7) if zone == "task" else \
            rng.uniform(TASK_Y[0], TASK_Y[1] + 20)
        lo, hi = _xrange(y, crop)
        if zone == "side":   # outside the centre crop, still in view
            clo, chi = _xrange(y, True)
            x = rng.uniform(lo + r * 0.6, clo + r * 0.3) if rng.random() < 0.5 else \
                rng.uniform(chi - r * 0.3, hi - r * 0.6)
        else:
            if hi - lo < 2 * r + 20:
                continue
            x = rng.uniform(lo + r + 8, hi - r - 8)
        slack = 1.0 if attempt < 300 else 0.85
        if all(np.hypot(x - px, y - py) >= slack * (r + pr) + 6 for px, py, pr in placed):
            return float(x), float(y)
    raise RuntimeError(f"could not place an object of radius {r} on the table")


def _colour(rng: np.random.Generator, palette: str, test: bool) -> tuple[str, bool]:
    seen, unseen = PALETTES[palette]
    if test and unseen and rng.random() < 0.5:
        return str(rng.choice(unseen)), True
    return str(rng.choice(seen)), False


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-10, 11), 0, 255)) for c in rgb)


def set_up(task: TaskDef, rng: np.random.Generator, test: bool) -> tuple[dict[str, Thing], dict[str, dict]]:
    """Appearances and the initial world state (oid -> attributes incl. pos/at/off/z)."""
    things: dict[str, Thing] = {}
    for o in task.objects:
        name, unseen = ("", False) if o.palette == "fixed" else _colour(rng, o.palette, test)
        rgb = _jitter(COLOURS[name], rng) if name else (0, 0, 0)
        things[o.oid] = Thing(o.oid, o.kind, o.noun, name, rgb, float(rng.uniform(*o.size)), o.layer,
                              unseen=unseen, angle=float(rng.uniform(-35, 35)))
    n_distract = int(rng.integers(1, 4))
    for kind in rng.choice(DISTRACTORS, n_distract, replace=False):
        name, unseen = _colour(rng, "distract", test)
        things[f"d_{kind}"] = Thing(f"d_{kind}", str(kind), DISTRACTOR_NOUNS.get(str(kind), str(kind)),
                                    name, _jitter(COLOURS[name], rng),
                                    float(rng.uniform(0.9, 1.1)), 1, distractor=True, unseen=unseen,
                                    angle=float(rng.uniform(-40, 40)))
    state: dict[str, dict] = {}
    placed: list[tuple[float, float, float]] = []
    free = [t for t in things.values() if not t.distractor and not task.obj(t.oid).at]
    free.sort(key=lambda t: -FOOTPRINT[t.kind] * t.size)
    for t in free + [t for t in things.values() if t.distractor]:
        r = FOOTPRINT[t.kind] * t.size
        x, y = _place(rng, r, placed, "side" if t.distractor else "task")
        placed.append((x, y, r))
        state[t.oid] = {"pos": (x, y), "at": "", "off": (0.0, 0.0), "z": 0}
    for z, o in enumerate(o for o in task.objects if o.at):
        state[o.oid] = {"pos": None, "at": o.at, "off": slot_offset(things[o.at], o.slot, rng), "z": z + 1}
    for o in task.objects:
        state[o.oid].update(o.attrs)
    return things, state
