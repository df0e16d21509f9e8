"""Drawers for kitchen things, seen from above. Each state has a big, high-contrast cue (a full
cup is a dark disc where an empty one is white; a kettle that is on has an orange halo) so the
state still reads after the model's resize to 64-224 px.

A drawer is ``f(pen, x, y, thing, state, ctx)``; ``ctx`` is the render context (scene, things).
"""

from __future__ import annotations

from .pen import PATTERN_A, PATTERN_B, PATTERN_C, Pen, along, mix, shade

WATER, HOT = (95, 160, 230), (150, 198, 240)
FILL = {"water": WATER, "hot water": HOT, "tea": (185, 115, 50), "strong tea": (70, 34, 12),
        "coffee": (62, 38, 22), "coffee with milk": (62, 38, 22), "stirred coffee": (165, 118, 78),
        "boiling water": (195, 222, 245), "pasta": (130, 180, 225), "stirred pasta": (130, 180, 225),
        "cereal": (226, 186, 112), "cereal with milk": (246, 246, 240), "half": WATER}
GLOW, METAL_DARK = (255, 140, 40), (90, 90, 96)
STUFF = {"tea": (225, 205, 160), "cereal": (215, 150, 60), "pasta": (240, 205, 95), "pills": (245, 245, 245)}


def _contents(p: Pen, x: float, y: float, r: float, fill: str, empty) -> None:
    """A container's inside: liquid colour plus texture cues (grounds, bubbles, pasta, milk)."""
    p.circle(x, y, r, FILL.get(fill, empty))
    if fill == "coffee grounds":
        p.dots(x, y, PATTERN_A, r * 0.75, r * 0.13, (60, 38, 20), 14)
    elif fill == "coffee with milk":
        p.ellipse(x + r * 0.15, y - r * 0.1, r * 0.55, r * 0.3, 30, (235, 225, 205))
    elif fill == "boiling water":
        p.dots(x, y, PATTERN_B, r * 0.8, r * 0.11, (255, 255, 255), 14)
    elif fill in ("pasta", "stirred pasta"):
        pat = PATTERN_A if fill == "pasta" else PATTERN_C
        for k, (px, py) in enumerate(pat[:16]):
            cx, cy = x + px * r * 0.75, y + py * r * 0.75
            ex, ey = along(cx, cy, (k * 47 if fill == "pasta" else 30 + k * 7) % 180, r * 0.22)
            p.line(2 * cx - ex, 2 * cy - ey, ex, ey, (240, 205, 95), 4)
    elif fill in ("cereal", "cereal with milk"):
        p.dots(x, y, PATTERN_A, r * 0.8, r * 0.12, (200, 130, 45), 30)


def kettle(p: Pen, x, y, th, st, ctx) -> None:
    r = 44 * th.size
    if st.get("on"):
        p.circle(x, y, r + 20, GLOW)
        p.circle(x, y, r + 9, (255, 70, 30))
    p.rect(x + r + 6, y, 18, r * 1.1, shade(th.rgb, 0.7))
    p.poly([(x - r + 6, y - 11), (x - r - 28, y - 4), (x - r + 6, y + 11)], shade(th.rgb, 0.85))
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r, shade(th.rgb, 0.6), 3)
    p.circle(x, y, r * 0.62, {"water": WATER, "hot water": HOT}.get(st["fill"], (55, 55, 62)))
    if st["fill"] == "hot water":
        for k in range(3):
            p.ellipse(x - 14 + 14 * k, y - r * 0.3, 6, 13, 15 * k - 15, (250, 252, 255), 2)
    p.circle(x + 26 * th.size, y + 30 * th.size, 7, (30, 30, 30))


def jug(p: Pen, x, y, th, st, ctx) -> None:
    r = 32 * th.size
    p.rect(x + r + 4, y, 14, r, th.rgb)
    p.poly([(x - r + 4, y - 8), (x - r - 18, y), (x - r + 4, y + 8)], (200, 212, 222))
    p.circle(x, y, r, (200, 212, 222))
    p.circle(x, y, r * 0.8, WATER if st["fill"] == "water" else (222, 230, 236))
    p.circle(x, y, r, th.rgb, 3)


def cup(p: Pen, x, y, th, st, ctx) -> None:
    r = 31 * th.size
    p.ellipse(x + r + 6, y, 11, 8, 0, th.rgb, 5)
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r, shade(th.rgb, 0.65), 2)
    _contents(p, x, y, r * 0.8, st["fill"], mix(th.rgb, (250, 250, 250), 0.7))


def glass(p: Pen, x, y, th, st, ctx) -> None:
    r = 25 * th.size
    p.circle(x, y, r, (205, 215, 224))
    p.circle(x, y, r * 0.8, WATER if st["fill"] == "water" else (224, 232, 238))
    if st["fill"] == "half":
        p.circle(x, y + r * 0.3, r * 0.45, WATER)
    p.circle(x, y, r, (245, 248, 250), 3)


def teabag(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 22, 26, (228, 208, 160), 10)
    p.line(x + 8, y - 10, x + 24, y - 24, (240, 240, 240), 2)
    p.rect(x + 26, y - 26, 11, 9, (200, 50, 50), 10)


def box(p: Pen, x, y, th, st, ctx) -> None:
    from .layout import BOX_SIZE
    w, h = (v * th.size for v in BOX_SIZE[st["stuff"]])
    if st.get("open"):
        p.rect(x, y - h * 0.85, w, h * 0.7, shade(th.rgb, 1.25))        # the lid, folded back
        p.rect(x, y, w, h, th.rgb)
        p.rect(x, y, w - 10, h - 10, shade(th.rgb, 0.3))
        p.dots(x, y, PATTERN_B, min(w, h) * 0.35, 4, STUFF[st["stuff"]], 10)
    else:
        p.rect(x, y, w, h, th.rgb)
        p.rect(x, y, w * 0.5, h * 0.55, (240, 236, 225))                   # the label
        p.circle(x, y, h * 0.18, shade(th.rgb, 0.8))
        p.rect(x, y, w, h, shade(th.rgb, 0.6), th=3)


def jar(p: Pen, x, y, th, st, ctx) -> None:
    r = 28 * th.size
    p.circle(x, y, r, (190, 190, 182))
    if st.get("open"):
        p.circle(x, y, r * 0.82, (70, 45, 25))
        p.dots(x, y, PATTERN_C, r * 0.6, 2.5, (110, 75, 40), 12)
        p.circle(x + r * 1.7, y - 8, r * 0.95, th.rgb)
        p.circle(x + r * 1.7, y - 8, r * 0.95, shade(th.rgb, 0.6), 3)
    else:
        p.circle(x, y, r * 0.95, th.rgb)
        p.circle(x, y, r * 0.7, shade(th.rgb, 0.75), 3)


def spoon(p: Pen, x, y, th, st, ctx) -> None:
    ex, ey = along(x, y, th.angle, 30 * th.size)
    p.line(x, y, ex, ey, th.rgb, 5)
    bx, by = along(x, y, th.angle + 180, 12 * th.size)
    p.ellipse(bx, by, 13 * th.size, 9 * th.size, th.angle, th.rgb)


def carton(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 40, 64, (238, 238, 235))
    p.rect(x, y - 22, 40, 18, th.rgb)
    p.line(x - 20, y, x + 20, y, (200, 200, 200), 2)
    p.rect(x, y, 40, 64, (150, 150, 150), th=2)


def bowl(p: Pen, x, y, th, st, ctx) -> None:
    r = 52 * th.size
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r, shade(th.rgb, 0.65), 3)
    _contents(p, x, y, r * 0.82, st["fill"], mix(th.rgb, (250, 250, 250), 0.65))


def bowl_after(p: Pen, x, y, th, st, ctx) -> None:
    """Dressing and salt go on top of whatever is in the bowl."""
    r = 52 * th.size
    if st.get("dressed"):
        p.ellipse(x - 8, y + 4, r * 0.42, r * 0.26, 20, (225, 205, 35))
        p.ellipse(x + 12, y - 10, r * 0.26, r * 0.18, 70, (225, 205, 35))
    if st.get("salted"):
        p.dots(x, y, PATTERN_C, r * 0.7, 3.5, (255, 255, 255), 30)


def board(p: Pen, x, y, th, st, ctx) -> None:
    w, h = 172 * th.size, 112 * th.size
    p.rect(x, y, w, h, th.rgb)
    p.rect(x, y, w - 14, h - 14, shade(th.rgb, 0.85), th=2)
    p.circle(x + w / 2 - 16, y, 7, shade(th.rgb, 0.5))


def _pieces(p: Pen, x, y, ctx, st, r: float, outer, inner, n: int) -> None:
    """Cut pieces: spread out where they were cut, scattered when in a bowl (tossed: reshuffled)."""
    container = ctx.container_of(st)
    if container is not None and container.kind == "bowl":
        pat = PATTERN_C if ctx.state[container.oid].get("mixed") else (PATTERN_A if outer[0] > 150 else PATTERN_B)
        spread = 30 * container.size
        for px, py in pat[:n + 3]:
            p.circle(x + px * spread, y + py * spread, r * 0.8, outer)
            p.circle(x + px * spread, y + py * spread, r * 0.4, inner)
        return
    for k in range(n):
        cx = x + (k - (n - 1) / 2) * r * 2.3
        p.circle(cx, y, r, outer)
        p.circle(cx, y, r * 0.55, inner)


def tomato(p: Pen, x, y, th, st, ctx) -> None:
    if st.get("cut"):
        _pieces(p, x, y, ctx, st, 11, (215, 45, 40), (250, 150, 120), 4)
        return
    p.circle(x, y, 25, (215, 45, 40))
    p.circle(x - 7, y - 7, 7, (240, 110, 100))
    for a in (0, 72, 144, 216, 288):
        p.line(x, y, *along(x, y, a, 9), (40, 130, 40), 3)


def cucumber(p: Pen, x, y, th, st, ctx) -> None:
    if st.get("cut"):
        _pieces(p, x, y, ctx, st, 9, (50, 125, 50), (200, 232, 160), 5)
        return
    p.ellipse(x, y, 40, 13, th.angle * 0.3, (50, 125, 50))
    p.ellipse(x, y - 3, 30, 4, th.angle * 0.3, (95, 170, 85))


def banana(p: Pen, x, y, th, st, ctx) -> None:
    if st.get("cut"):
        _pieces(p, x, y, ctx, st, 8, (235, 205, 70), (252, 244, 200), 6)
        return
    p.ellipse(x, y + 22, 40, 30, 0, (240, 210, 60), 13, 200, 340)
    p.circle(*along(x, y + 22, 200, 40), 4, (90, 70, 30))


def lemon(p: Pen, x, y, th, st, ctx) -> None:
    p.ellipse(x, y, 22, 17, 10, (245, 222, 50))
    p.circle(x + 21, y + 3, 4, (225, 200, 40))


def apple(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x, y, 22, th.rgb if th.colour else (200, 40, 40))
    p.circle(x - 7, y - 6, 6, mix(th.rgb if th.colour else (200, 40, 40), (255, 255, 255), 0.4))
    p.line(x, y, x + 4, y - 10, (90, 60, 30), 3)


def knife(p: Pen, x, y, th, st, ctx) -> None:
    bx, by = along(x, y, th.angle, 22)
    hx, hy = along(x, y, th.angle + 180, 30)
    p.rect(bx, by, 64, 13, (205, 210, 216), th.angle)
    p.rect(hx, hy, 36, 13, th.rgb, th.angle)


def bottle(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x, y, 21, (220, 188, 60))
    p.circle(x, y, 21, (160, 130, 30), 2)
    p.circle(x, y, 8, (60, 110, 50))


def shaker(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x, y, 14, (245, 245, 245))
    p.circle(x, y, 14, (150, 150, 150), 2)
    p.dots(x, y, PATTERN_A, 7, 1.6, (90, 90, 90), 5)


def hob(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 150, 150, (48, 48, 54))
    if st.get("on"):
        p.circle(x, y, 78, GLOW)
        p.circle(x, y, 66, (230, 70, 30))
    p.circle(x, y, 60, (85, 85, 92), 5)
    p.circle(x + 62, y + 62, 11, (150, 150, 155))
    p.line(x + 62, y + 62, *along(x + 62, y + 62, 90 if st.get("on") else 0, 10), (30, 30, 30), 3)


def pot(p: Pen, x, y, th, st, ctx) -> None:
    r = 60 * th.size
    p.rect(x - r - 12, y, 26, 14, METAL_DARK)
    p.rect(x + r + 12, y, 26, 14, METAL_DARK)
    p.circle(x, y, r, th.rgb)
    _contents(p, x, y, r * 0.86, st["fill"], (92, 92, 98))
    if st.get("salted"):
        p.dots(x, y, PATTERN_C, r * 0.7, 3.5, (255, 255, 255), 24)


def lid(p: Pen, x, y, th, st, ctx) -> None:
    r = 52 * th.size
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r * 0.75, shade(th.rgb, 0.8), 3)
    p.circle(x, y, 10, (35, 35, 35))


def plate(p: Pen, x, y, th, st, ctx) -> None:
    r = (40 if st.get("small") else 60) * th.size
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r * 0.72, mix(th.rgb, (255, 255, 255), 0.35))


def bread(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 66, 66, (170, 115, 60))
    p.rect(x, y, 56, 56, (255, 228, 60) if st.get("buttered") else (226, 190, 138))


def bread_after(p: Pen, x, y, th, st, ctx) -> None:
    if st.get("cut"):
        p.line(x - 44, y - 44, x + 44, y + 44, (236, 236, 230), 14)


def cheese(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 54, 54, (250, 200, 55), 8)
    for dx, dy in ((-12, -10), (10, 4), (-4, 14)):
        p.circle(x + dx, y + dy, 5, (220, 165, 30))


def lettuce(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x, y, 31, (105, 190, 70))
    for a in range(0, 360, 60):
        p.ellipse(*along(x, y, a, 22), 10, 6, a, (60, 140, 40), 2)


def ham(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 56, 50, (236, 150, 160), -6)
    p.rect(x, y, 56, 50, (250, 212, 218), -6, th=4)


def butter(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 68, 46, th.rgb)
    p.rect(x, y, 42, 26, (250, 226, 110))


def biscuit(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x, y, 16, (205, 150, 80))
    p.dots(x, y, PATTERN_B, 10, 1.8, (150, 95, 40), 6)


DRAW = {f.__name__: f for f in (kettle, jug, cup, glass, teabag, box, jar, spoon, carton, bowl, board,
                                tomato, cucumber, banana, lemon, apple, knife, bottle, shaker, hob, pot,
                                lid, plate, bread, cheese, lettuce, ham, butter, biscuit)}
AFTER = {"bowl": bowl_after, "bread": bread_after}
