"""Assembly, repair and care task definitions. See catalog.py for the meaning of each field."""

from __future__ import annotations

from .catalog import ObjDef as O
from .catalog import StepDef as S
from .catalog import TaskDef


def _leg(n: int, where: str, slot: str) -> S:
    return S(f"Screw a leg into the {where} hole.", f"Attach a leg at the {where} corner.",
             f"attached the {where} leg", f"screwing a leg into the {where} hole", "seat",
             carry=f"leg{n}", put="in", slot=slot, motion="screw", dur=(8, 22), group=1)


ASSEMBLE_STOOL = TaskDef(
    "assemble_stool", "Assemble a wooden stool", "assemble my new stool", "assemble {n} stools",
    "assembly",
    (O("seat", "seat", "stool seat", "wood", {"upright": False, "tight": False}, layer=0,
       size=(0.95, 1.05)),
     *(O(f"leg{n}", "leg", "stool leg", "wood", size=(0.95, 1.05)) for n in range(1, 5)),
     O("ring", "ring", "foot ring", "metal"),
     O("screwdriver", "screwdriver", "screwdriver", "handle"),
     O("bracket", "bracket", "metal bracket", "metal")),
    (_leg(1, "front-left", "fl"), _leg(2, "front-right", "fr"), _leg(3, "back-left", "bl"),
     _leg(4, "back-right", "br"),
     S("Slide the foot ring over the legs.", "Fit the metal ring onto the legs.",
       "fitted the foot ring", "sliding the foot ring over the legs", "seat", carry="ring", put="on",
       motion="place", dur=(6, 16), group=2),
     S("Tighten the screws with the screwdriver.", "Use the screwdriver to tighten every screw.",
       "tightened the screws", "tightening the screws with the screwdriver", "seat",
       carry="screwdriver", put="back", motion="screw", effects=(("seat", "tight", True),),
       dur=(10, 30), group=3),
     S("Turn the stool upright.", "Flip the stool over onto its legs.", "turned the stool upright",
       "turning the stool upright", "seat", motion="flip", effects=(("seat", "upright", True),),
       dur=(5, 10), group=4)),
    confusers=((0, "bracket"), (1, "bracket"), (2, "bracket"), (3, "bracket")))

ASSEMBLE_LAMP = TaskDef(
    "assemble_lamp", "Assemble a desk lamp", "put together my desk lamp", "assemble {n} desk lamps",
    "assembly",
    (O("base", "lampbase", "lamp base", "appliance", {"on": False}, layer=0),
     O("pole", "pole", "lamp pole", "metal"),
     O("bulb", "bulb", "light bulb", attrs={"old": False}),
     O("oldbulb", "bulb", "old light bulb", attrs={"old": True}),
     O("shade", "shade", "lampshade", "box"),
     O("socket", "socket", "power strip", layer=0),
     O("plug", "plug", "plug")),
    (S("Screw the pole into the lamp base.", "Attach the pole to the base.", "attached the pole",
       "screwing the pole into the lamp base", "base", carry="pole", put="in", slot="centre",
       motion="screw", dur=(8, 20), group=1),
     S("Screw the light bulb into the holder.", "Put the new bulb in.", "put the bulb in",
       "screwing the light bulb into the holder", "base", carry="bulb", put="in", slot="centre",
       motion="screw", dur=(6, 16), group=2),
     S("Put the lampshade on.", "Fit the shade on top of the lamp.", "put the shade on",
       "putting the lampshade on", "base", carry="shade", put="on", slot="centre", motion="place",
       dur=(6, 14), group=3, early=True),
     S("Plug the lamp into the power strip.", "Plug the lamp in.", "plugged the lamp in",
       "plugging the lamp into the power strip", "socket", carry="plug", put="in", slot="s1",
       motion="place", dur=(5, 12), group=3),
     S("Switch the lamp on.", "Turn on the lamp.", "switched the lamp on", "switching the lamp on",
       "base", effects=(("base", "on", True),), dur=(5, 9), group=4)),
    confusers=((1, "oldbulb"),))

REPLACE_BATTERIES = TaskDef(
    "replace_batteries", "Replace the batteries in a flashlight",
    "replace the batteries in my flashlight", "replace the batteries in {n} flashlights", "repair",
    (O("flashlight", "flashlight", "flashlight", "plastic", {"open": False, "on": False}, layer=0),
     O("old1", "battery", "old battery", attrs={"old": True}, at="flashlight", slot="s1"),
     O("old2", "battery", "old battery", attrs={"old": True}, at="flashlight", slot="s2"),
     O("new1", "battery", "new battery", attrs={"old": False}),
     O("new2", "battery", "new battery", attrs={"old": False}),
     O("tray", "tray", "tray", layer=0)),
    (S("Open the battery cover.", "Slide the battery cover open.", "opened the battery cover",
       "opening the battery cover", "flashlight", motion="open", effects=(("flashlight", "open", True),),
       dur=(6, 14), group=1),
     S("Put the first old battery in the tray.", "Take out one old battery and drop it in the tray.",
       "took out the first old battery", "moving an old battery into the tray", "tray", carry="old1",
       put="in", slot="left", motion="place", dur=(5, 12), group=2),
     S("Put the second old battery in the tray.", "Take out the other old battery.",
       "took out the second old battery", "moving the other old battery into the tray", "tray",
       carry="old2", put="in", slot="right", motion="place", dur=(5, 12), group=2),
     S("Insert a new battery into the first slot.", "Put a new battery in the top slot.",
       "inserted the first new battery", "inserting a new battery into the top slot", "flashlight",
       carry="new1", put="in", slot="s1", motion="place", dur=(6, 14), group=3),
     S("Insert a new battery into the second slot.", "Put a new battery in the bottom slot.",
       "inserted the second new battery", "inserting a new battery into the bottom slot",
       "flashlight", carry="new2", put="in", slot="s2", motion="place", dur=(6, 14), group=3),
     S("Close the battery cover.", "Slide the cover back on.", "closed the battery cover",
       "closing the battery cover", "flashlight", motion="open",
       effects=(("flashlight", "open", False),), dur=(5, 12), group=4, early=True),
     S("Switch the flashlight on to test it.", "Turn the flashlight on to check it works.",
       "tested the flashlight", "switching the flashlight on", "flashlight",
       effects=(("flashlight", "on", True),), dur=(5, 9), group=5)),
    confusers=((3, "old1"), (4, "old2")))


def _water(oid: str, name: str, extra: str = "") -> S:
    return S(f"Water the {name}.", f"Give the {name} {extra or 'some water'}.", f"watered the {name}",
             f"watering the {name}", oid, carry="can", put="back", motion="pour",
             effects=((oid, "wet", True),), dur=(6, 16), group=2)


WATER_PLANTS = TaskDef(
    "water_plants", "Water the house plants", "water my plants", "water the plants in {n} rooms", "care",
    (O("tray", "tray", "drip tray", layer=0, size=(1.15, 1.2)),
     O("leafy", "plant", "leafy plant", "pot", {"variety": "leafy", "wet": False, "dead": True}),
     O("flowers", "plant", "flowering plant", "pot", {"variety": "flowers", "wet": False}),
     O("cactus", "plant", "cactus", "pot", {"variety": "cactus", "wet": False}),
     O("can", "wateringcan", "watering can", "plastic", {"fill": "empty"}),
     O("jug", "jug", "water jug", "plastic", {"fill": "water"}),
     O("scissors", "scissors", "pair of scissors", "handle")),
    (S("Put the leafy plant on the drip tray.", "Move the leafy plant onto the tray.",
       "put the leafy plant on the tray", "moving the leafy plant onto the drip tray", "tray",
       carry="leafy", put="on", slot="left", motion="place", dur=(5, 12), group=1),
     S("Put the flowering plant on the drip tray.", "Move the flowers onto the tray.",
       "put the flowering plant on the tray", "moving the flowering plant onto the drip tray", "tray",
       carry="flowers", put="on", slot="right", motion="place", dur=(5, 12), group=1),
     S("Fill the watering can from the jug.", "Pour the water from the jug into the watering can.",
       "filled the watering can", "pouring water from the jug into the watering can", "can",
       carry="jug", put="back", motion="pour",
       effects=(("can", "fill", "water"), ("jug", "fill", "empty")), dur=(6, 14), group=1),
     _water("leafy", "leafy plant"), _water("flowers", "flowering plant"),
     _water("cactus", "cactus", ", just a little"),
     S("Cut off the dead leaf.", "Trim the brown leaf off the leafy plant.", "cut off the dead leaf",
       "cutting off the dead leaf with the scissors", "leafy", carry="scissors", put="back",
       motion="cut", effects=(("leafy", "dead", False),), dur=(6, 16), group=3)),
    confusers=((0, "cactus"), (1, "cactus")))

TAKE_MEDICINE = TaskDef(
    "take_medicine", "Take the morning medicine", "take my morning pill",
    "get the morning pills ready for {n} people", "care",
    (O("pillbox", "box", "pill box", "box", {"open": False, "stuff": "pills"}, size=(0.8, 0.9)),
     O("pill", "pill", "pill", at="pillbox"),
     O("glass", "glass", "glass", attrs={"fill": "empty"}),
     O("jug", "jug", "water jug", "plastic", {"fill": "water"}),
     O("saucer", "plate", "saucer", "ceramic", {"small": True}),
     O("sweet", "sweet", "sweet", "distract")),
    (S("Fill the glass with water.", "Pour some water into the glass.", "filled the glass",
       "pouring water from the jug into the glass", "glass", carry="jug", put="back", motion="pour",
       effects=(("glass", "fill", "water"), ("jug", "fill", "empty")), dur=(6, 14), group=1),
     S("Open the pill box.", "Flip open the lid of the pill box.", "opened the pill box",
       "opening the pill box", "pillbox", motion="open", effects=(("pillbox", "open", True),),
       dur=(5, 10), group=1, early=True),
     S("Put one pill on the saucer.", "Take a single pill out and put it on the saucer.",
       "put a pill on the saucer", "putting a pill on the saucer", "saucer", carry="pill", put="on",
       motion="place", dur=(5, 12), group=2),
     S("Close the pill box.", "Shut the lid of the pill box.", "closed the pill box",
       "closing the pill box", "pillbox", motion="open", effects=(("pillbox", "open", False),),
       dur=(5, 10), group=3, early=True),
     S("Take the pill with a sip of water.", "Swallow the pill with some water.", "took the pill",
       "drinking from the glass", "glass", carry="glass", put="back", motion="drink",
       effects=(("pill", "gone", True), ("glass", "fill", "half")), dur=(6, 14), group=3)),
    confusers=((2, "sweet"),))

OTHER = (ASSEMBLE_STOOL, ASSEMBLE_LAMP, REPLACE_BATTERIES, WATER_PLANTS, TAKE_MEDICINE)
