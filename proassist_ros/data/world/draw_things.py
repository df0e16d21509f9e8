"""Drawers for assembly, repair and care things, and for distractors (same contract as
draw_kitchen.py). Attached parts are drawn end-on at their slot (a leg in its hole is a disc),
so "attached" looks different from "lying on the table", not just moved.
"""

from __future__ import annotations

from .pen import PATTERN_A, Pen, along, box_points, mix, shade

CUSHION, SOCKET_HOLE, BRIGHT = (150, 40, 52), (45, 35, 30), (215, 215, 225)


def seat(p: Pen, x, y, th, st, ctx) -> None:
    r = 84 * th.size
    if st.get("upright"):
        p.circle(x, y, r, shade(th.rgb, 1.1))
        p.circle(x, y, r * 0.8, CUSHION)
        p.circle(x, y, r * 0.8, shade(CUSHION, 0.7), 3)
        return
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r * 0.9, shade(th.rgb, 0.8), 3)
    for dx, dy in ((-46, 46), (46, 46), (-46, -46), (46, -46)):
        p.circle(x + dx * th.size, y + dy * th.size, 13, SOCKET_HOLE)


def seat_after(p: Pen, x, y, th, st, ctx) -> None:
    if st.get("tight") and not st.get("upright"):
        for dx, dy in ((-46, 46), (46, 46), (-46, -46), (46, -46)):
            p.circle(x + dx * th.size, y + dy * th.size, 21, BRIGHT, 5)


def leg(p: Pen, x, y, th, st, ctx) -> None:
    if st["at"]:
        p.circle(x, y, 17, th.rgb)
        p.circle(x, y, 17, shade(th.rgb, 0.55), 3)
        return
    p.rect(x, y, 116, 20, th.rgb, th.angle)
    p.circle(*along(x, y, th.angle, 56), 9, shade(th.rgb, 0.6))


def ring(p: Pen, x, y, th, st, ctx) -> None:
    r = 70 * ctx.things[st["at"]].size if st["at"] else 56 * th.size
    p.circle(x, y, r, th.rgb, 9)
    p.circle(x, y, r, shade(th.rgb, 0.6), 2)


def screwdriver(p: Pen, x, y, th, st, ctx) -> None:
    hx, hy = along(x, y, th.angle + 180, 18)
    tx, ty = along(x, y, th.angle, 42)
    p.line(x, y, tx, ty, (185, 185, 190), 5)
    p.rect(hx, hy, 42, 17, th.rgb, th.angle)


def bracket(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 44, 11, th.rgb, th.angle)
    p.rect(*along(x, y, th.angle, 17), 11, 36, th.rgb, th.angle)


def lampbase(p: Pen, x, y, th, st, ctx) -> None:
    plug = ctx.scene.pos("plug") if "plug" in ctx.things else None
    if plug is not None:
        p.line(x + 30, y + 20, plug[0], plug[1], (25, 25, 25), 4)
    if st.get("on"):
        p.circle(x, y, 112, (255, 236, 150))
        p.circle(x, y, 90, (255, 248, 200))
    p.circle(x, y, 46 * th.size, th.rgb)
    p.circle(x, y, 46 * th.size, shade(th.rgb, 0.6), 3)
    p.circle(x + 30 * th.size, y + 30 * th.size, 8, (25, 25, 25))


def pole(p: Pen, x, y, th, st, ctx) -> None:
    if st["at"]:
        p.circle(x, y, 13, th.rgb)
        p.circle(x, y, 13, shade(th.rgb, 0.6), 2)
        return
    p.rect(x, y, 122, 13, th.rgb, th.angle)


def bulb(p: Pen, x, y, th, st, ctx) -> None:
    glass = (120, 118, 108) if st.get("old") else (252, 246, 214)
    if st["at"] and ctx.state[st["at"]].get("on"):
        glass = (255, 255, 230)
    if not st["at"]:
        p.rect(*along(x, y, th.angle, 17), 12, 12, (175, 175, 168), th.angle)
    p.circle(x, y, 16, glass)
    if st.get("old"):
        p.circle(x - 3, y - 2, 5, (60, 55, 50))


def shade_(p: Pen, x, y, th, st, ctx) -> None:
    r = 62 if st["at"] else 56
    p.circle(x, y, r * th.size, th.rgb, 15)
    p.circle(x, y, (r - 9) * th.size, shade(th.rgb, 0.7), 2)


def socket(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 124, 36, (238, 238, 232))
    for dx in (-30, 0, 30):
        p.circle(x + dx, y, 8, (60, 60, 60))
    p.circle(x + 54, y, 5, (220, 40, 40))


def plug(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 22, 26, (30, 30, 32))


def flashlight(p: Pen, x, y, th, st, ctx) -> None:
    s = th.size
    if st.get("on"):
        p.poly([(x + 104 * s, y - 22), (x + 270, y - 80), (x + 270, y + 80), (x + 104 * s, y + 22)],
               (255, 244, 165))
    p.rect(x, y, 164 * s, 46, th.rgb)
    p.poly([(x + 80 * s, y - 23), (x + 104 * s, y - 30), (x + 104 * s, y + 30), (x + 80 * s, y + 23)],
           shade(th.rgb, 0.7))
    p.rect(x + 100 * s, y, 8, 50, (235, 235, 205) if not st.get("on") else (255, 255, 230))
    if st.get("open"):
        p.rect(x - 14 * s, y, 84, 38, (40, 40, 46))
        p.rect(x - 14 * s, y + 52, 84, 30, shade(th.rgb, 1.2))           # the cover, slid off
    else:
        p.rect(x - 14 * s, y, 84, 38, shade(th.rgb, 1.2))
        for dx in (-20, -8, 4):
            p.line(x - 14 * s + dx, y - 12, x - 14 * s + dx, y + 12, shade(th.rgb, 0.8), 2)
    p.circle(x + 60 * s, y, 7, (30, 30, 30))


def battery(p: Pen, x, y, th, st, ctx) -> None:
    if st.get("old"):
        p.rect(x, y, 56, 18, (112, 100, 84))
        p.dots(x, y, PATTERN_A, 9, 2.5, (150, 90, 40), 4)
    else:
        p.rect(x, y, 56, 18, (35, 35, 38))
        p.rect(x + 14, y, 28, 18, (205, 125, 50))
    p.rect(x + 31, y, 6, 8, (190, 190, 190))


def tray(p: Pen, x, y, th, st, ctx) -> None:
    w, h = 176 * th.size, 100 * th.size
    p.rect(x, y, w, h, (80, 80, 88))
    p.rect(x, y, w - 12, h - 12, (112, 112, 120))


def plant(p: Pen, x, y, th, st, ctx) -> None:
    r = 38 * th.size
    p.circle(x, y, r, th.rgb)
    p.circle(x, y, r, shade(th.rgb, 0.6), 3)
    p.circle(x, y, r * 0.8, (80, 50, 30) if st.get("wet") else (185, 148, 105))
    if st.get("wet"):
        p.ellipse(x + r * 0.3, y + r * 0.35, r * 0.22, r * 0.1, 20, (130, 170, 215))
    variety = st.get("variety", "leafy")
    if variety == "cactus":
        p.circle(x, y, r * 0.45, (65, 140, 70))
        p.dots(x, y, PATTERN_A, r * 0.38, 1.5, (240, 240, 230), 10)
        return
    angles = (20, 95, 170, 245) if variety == "flowers" else (10, 80, 150, 220, 290)
    for k, a in enumerate(angles):
        if st.get("dead") and k == 1:
            p.ellipse(*along(x, y, a, r * 0.9), 34, 15, a, (135, 85, 35))
        else:
            p.ellipse(*along(x, y, a, r * 0.78), 21, 9, a, (55, 150, 60))
    if variety == "flowers":
        for a in (60, 200, 320):
            p.circle(*along(x, y, a, r * 0.4), 9, (230, 60, 125))


def wateringcan(p: Pen, x, y, th, st, ctx) -> None:
    p.line(x + 30, y, x + 84, y - 22, shade(th.rgb, 0.8), 7)
    p.circle(x + 86, y - 23, 8, shade(th.rgb, 0.7))
    p.rect(x, y, 72, 50, th.rgb)
    p.rect(x - 30, y, 12, 40, shade(th.rgb, 0.7))
    p.circle(x - 12, y - 4, 14, (95, 160, 230) if st.get("fill") == "water" else (48, 48, 54))


def scissors(p: Pen, x, y, th, st, ctx) -> None:
    for side in (-1, 1):
        lx, ly = along(x, y, th.angle + 90 * side, 9)
        p.circle(*along(lx, ly, th.angle + 180, 14), 8, th.rgb, 4)
        p.line(lx, ly, *along(x, y, th.angle + 4 * side, 40), (195, 198, 205), 4)


def pill(p: Pen, x, y, th, st, ctx) -> None:
    p.ellipse(x, y, 10, 6, 30, (248, 248, 248))
    p.ellipse(x, y, 10, 6, 30, (150, 150, 150), 1)


def sweet(p: Pen, x, y, th, st, ctx) -> None:
    p.poly([(x - 12, y), (x - 22, y - 8), (x - 22, y + 8)], mix(th.rgb, (255, 255, 255), 0.3))
    p.poly([(x + 12, y), (x + 22, y - 8), (x + 22, y + 8)], mix(th.rgb, (255, 255, 255), 0.3))
    p.ellipse(x, y, 13, 9, 0, th.rgb)


def book(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 110, 80, th.rgb, th.angle)
    p.poly(box_points(*along(x, y, th.angle, 50), 8, 76, th.angle), (240, 235, 220))


def phone(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 42, 82, (30, 30, 34), th.angle)
    p.rect(x, y, 34, 66, (25, 35, 75), th.angle)


def keys(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x, y, 10, (200, 200, 205), 3)
    for a in (20, 80):
        p.rect(*along(x, y, a + th.angle, 22), 24, 7, (190, 180, 120), a + th.angle)
    p.rect(*along(x, y, 200 + th.angle, 18), 16, 12, th.rgb, th.angle)


def remote(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 34, 94, th.rgb, th.angle)
    for k in range(3):
        p.circle(*along(x, y, th.angle + 90, 22 - 16 * k), 4, shade(th.rgb, 1.6))


def glasses(p: Pen, x, y, th, st, ctx) -> None:
    p.circle(x - 17, y, 15, th.rgb, 4)
    p.circle(x + 17, y, 15, th.rgb, 4)


def wallet(p: Pen, x, y, th, st, ctx) -> None:
    p.rect(x, y, 72, 46, th.rgb, th.angle)
    p.rect(x, y, 72, 46, shade(th.rgb, 0.6), th.angle, th=2)


DRAW = {f.__name__.rstrip("_"): f for f in (
    seat, leg, ring, screwdriver, bracket, lampbase, pole, bulb, shade_, socket, plug, flashlight,
    battery, tray, plant, wateringcan, scissors, pill, sweet, book, phone, keys, remote, glasses, wallet)}
AFTER = {"seat": seat_after}
