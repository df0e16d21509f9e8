"""The vocabulary of the task world: colours, object and step definitions, task definitions.

Task definitions are data (``tasks_kitchen.py``, ``tasks_other.py``); the script builder, the
renderer and the caption writer all read the same definitions, so what is said, what is drawn and
what is captioned cannot drift apart. Colours come in families, each with colours reserved for
the test split (unseen appearances).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# name -> RGB. Names are what captions say, so they must be plain words.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 40, 40), "blue": (40, 85, 205), "green": (45, 150, 65), "yellow": (235, 205, 45),
    "white": (236, 236, 230), "black": (38, 38, 44), "silver": (175, 178, 185),
    "orange": (238, 130, 30), "purple": (125, 60, 165), "pink": (235, 135, 175),
    "teal": (30, 150, 150), "brown": (125, 78, 42), "beige": (216, 196, 160),
    "navy": (32, 42, 105), "lime": (155, 212, 55), "grey": (120, 122, 128),
    "cream": (242, 228, 190), "maroon": (120, 30, 45), "turquoise": (60, 200, 200),
    "olive": (110, 120, 40), "terracotta": (190, 100, 60), "magenta": (200, 40, 160),
}

# family -> (colours seen in train/val, colours reserved for the test split)
PALETTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "appliance": (("silver", "red", "black", "white"), ("teal",)),
    "ceramic": (("white", "blue", "yellow", "red"), ("pink", "turquoise")),
    "plastic": (("blue", "green", "orange", "purple"), ("magenta",)),
    "wood": (("beige", "brown", "cream"), ("olive",)),
    "box": (("green", "red", "blue", "orange"), ("purple", "lime")),
    "handle": (("black", "red", "blue"), ("yellow",)),
    "pot": (("terracotta", "white", "blue"), ("grey",)),
    "metal": (("silver", "grey"), ("black",)),
    "fixed": (("white",), ()),
    "distract": (("red", "blue", "green", "yellow", "black", "navy"), ("maroon",)),
}


@dataclass(frozen=True)
class ObjDef:
    """One object of a task's scene. ``attrs`` are its initial states (drawn and captioned)."""

    oid: str
    kind: str                      # the drawer (render_*.py) and caption wording
    noun: str                      # "kettle", "tea box"
    palette: str = "fixed"
    attrs: dict = field(default_factory=dict)
    at: str = ""                   # initially in/on this object
    slot: str = ""                 # named place in the container (kinds define slots)
    layer: int = 1                 # 0: flat things (boards, trays) drawn first
    size: tuple[float, float] = (0.9, 1.1)


@dataclass(frozen=True)
class StepDef:
    """One recipe step: what is said (text/alt), done (done), captioned (ing) and drawn (effects).

    ``carry`` is moved by the hand to ``target``; ``put`` says what happens to it at the end:
    "in"/"on" (stays in/on the target, at ``slot``), "back" (kept in hand; put back afterwards).
    ``effects`` (oid, attribute, value) become visible at the step's completion.
    ``early``: the step can wrongly be done before its turn, and undone (a wrong-order mistake).
    """

    text: str
    alt: str
    done: str
    ing: str
    target: str
    carry: str = ""
    put: str = ""
    slot: str = ""
    motion: str = "press"          # press | pour | cut | stir | shake | screw | place | wait | open | flip | spread
    effects: tuple[tuple[str, str, object], ...] = ()
    dur: tuple[float, float] = (6.0, 16.0)
    group: int = 0
    early: bool = False


@dataclass(frozen=True)
class TaskDef:
    type: str
    title: str                     # "Make a cup of tea" (the knowledge's first line)
    goal_phrase: str               # "make a cup of tea"
    long_phrase: str               # "make tea for {n} people"
    domain: str
    objects: tuple[ObjDef, ...]
    steps: tuple[StepDef, ...]
    confusers: tuple[tuple[int, str], ...] = ()   # (step index, wrong object) wrong-object mistakes

    def obj(self, oid: str) -> ObjDef:
        for o in self.objects:
            if o.oid == oid:
                return o
        raise KeyError(f"task {self.type}: no object {oid!r}")

    @property
    def groups(self) -> list[int]:
        return [s.group for s in self.steps]


def lower_first(text: str) -> str:
    """'Fill the kettle.' -> 'fill the kettle' (for embedding a step in a sentence)."""
    text = text.rstrip(".")
    return text[:1].lower() + text[1:]


NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve")


def number(n: int) -> str:
    return NUMBERS[n] if 0 <= n < len(NUMBERS) else str(n)


def article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase
