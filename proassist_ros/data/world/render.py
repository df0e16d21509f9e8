"""Frames: draw the table plane, warp it once into the head camera, add light, noise and blur.

Per frame: copy the precomputed table, draw things (flat ones first, containers before their
contents), the carried thing last (at the fingertips, lifted: a bit larger, with a shadow, so
putting it down is a visible change), arms and hands over everything; then ONE nearest-neighbour
warpPerspective (table perspective x ego-motion; linear interpolation costs ~4x more and the
sensor noise hides the difference), a box blur only while the head moves fast, and gain plus a
shifted precomputed noise tile in one scaleAdd. No text is ever drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from . import draw_kitchen, draw_things
from .camera import NOISE_MARGIN, CameraPath, blur_px, noise_tile, similarity
from .layout import ARM_L, ARM_R, CANVAS, FOOTPRINT, VIEW_QUAD, Thing
from .motion import Scene, scene_at
from .pen import Pen, along, mix, shade
from .script import Timeline, hidden

DRAW = {**draw_kitchen.DRAW, **draw_things.DRAW}
AFTER = {**draw_kitchen.AFTER, **draw_things.AFTER}
WALL = (96, 100, 108)
STREAM = {"carton": (246, 246, 240), "bottle": (220, 190, 60), "spoon": (70, 45, 25)}
NOISE_BIAS = 6
LIFT = 1.18                        # a carried thing is nearer the camera: drawn larger, with a shadow


@dataclass
class Look:
    """An episode's fixed appearance beyond the things: table, skin, sleeves, colour cast, noise."""

    table: tuple[int, int, int]
    skin: tuple[int, int, int]
    sleeve: tuple[int, int, int]
    tint: tuple[float, float, float]
    noise_sigma: float
    seed: int


@dataclass
class Ctx:
    scene: Scene
    things: dict[str, Thing]

    @property
    def state(self) -> dict:
        return self.scene.state

    def container_of(self, st: dict) -> Thing | None:
        return self.things[st["at"]] if st["at"] else None


def perspective(w: int, h: int, scale: float) -> np.ndarray:
    src = np.float32(VIEW_QUAD) * scale
    dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def table_texture(look: Look, scale: float) -> np.ndarray:
    """Wood grain: stretched low-resolution noise, with a few darker plank seams."""
    rng = np.random.default_rng(look.seed)
    cw, ch = int(round(CANVAS[0] * scale)), int(round(CANVAS[1] * scale))
    grain = cv2.resize(rng.normal(0, 1, (48, 12)).astype(np.float32), (cw, ch), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.normal(0, 1, (180, 40)).astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR)
    f = 1 + 0.06 * grain + 0.03 * fine
    base = np.array(look.table, np.float32) * np.array(look.tint, np.float32)
    img = np.clip(f[..., None] * base, 0, 255).astype(np.uint8)
    pen = Pen(img, scale, look.tint)
    for y in (150, 330, 515):
        pen.line(0, y + rng.uniform(-20, 20), CANVAS[0], y + rng.uniform(-20, 20), shade(look.table, 0.8), 2)
    return img


class Renderer:
    def __init__(self, things: dict[str, Thing], timeline: Timeline, cam: CameraPath, look: Look,
                 size: tuple[int, int], ego: bool = True, noise: bool = True, hands: bool = True):
        self.things, self.tl, self.cam, self.look = things, timeline, cam, look
        self.w, self.h = size
        self.s = self.w / 640.0
        self.ego, self.noise, self.hands = ego, noise, hands
        self.bg = table_texture(look, self.s)
        self.P = perspective(self.w, self.h, self.s)
        rng = np.random.default_rng([look.seed, 1])
        self.tile = noise_tile(rng, self.w, self.h, look.noise_sigma, NOISE_BIAS) if noise else None
        self.wall = tuple(int(c * t) for c, t in zip(WALL, look.tint))
        self._kids_for: dict | None = None
        self._kids: dict[str, list[str]] = {}

    def canvas(self, t: float, state: dict | None = None) -> np.ndarray:
        """The table plane at time t (before the camera); ``state`` overrides the world state
        (a counterfactual: the same hands and camera, other object states)."""
        sc = scene_at(self.tl, t)
        if state is not None:
            sc.state = state
        img = self.bg.copy()
        pen = Pen(img, self.s, self.look.tint)
        ctx = Ctx(sc, self.things)
        state = sc.state
        tops = [o for o, st in state.items() if not st["at"] and o != sc.carried]
        tops.sort(key=lambda o: (self.things[o].layer, state[o]["pos"][1]))
        for o in tops:
            self._draw(pen, ctx, o)
        if sc.carried:
            if sc.pouring:
                self._stream(pen, sc)
            x, y = sc.pos(sc.carried)
            th = self.things[sc.carried]
            r = FOOTPRINT[th.kind] * th.size * 0.8
            pen.ellipse(x + 12, y + 14, r, r * 0.8, 0, shade(self.look.table, 0.72))   # its shadow
            self._draw(pen.lifted(x, y, LIFT), ctx, sc.carried)
        if self.hands:
            self._arm(pen, ARM_L, sc.left, sc.left_grip, self.look.skin, self.look.sleeve)
            self._arm(pen, ARM_R, sc.hand, sc.grip, self.look.skin, self.look.sleeve)
        return img

    def hand_mask(self, t: float) -> np.ndarray:
        """bool (H, W): pixels the arms and hands cover at time t (tests: judge states, not hands)."""
        sc = scene_at(self.tl, t)
        img = np.zeros((self.bg.shape[0], self.bg.shape[1], 3), np.uint8)
        pen = Pen(img, self.s)
        white = (255, 255, 255)
        self._arm(pen, ARM_L, sc.left, sc.left_grip, white, white)
        self._arm(pen, ARM_R, sc.hand, sc.grip, white, white)
        H = similarity(self.cam.params(np.array([t]))[:, 0], self.w, self.h) @ self.P if self.ego else self.P
        warped = cv2.warpPerspective(img[..., 0], H, (self.w, self.h), flags=cv2.INTER_NEAREST)
        return cv2.dilate(warped, np.ones((3, 3), np.uint8)) > 0

    def _draw(self, pen: Pen, ctx: Ctx, oid: str) -> None:
        st = ctx.state[oid]
        if hidden(ctx.state, self.things, oid) and not ctx.scene.holds(oid):
            return
        th = self.things[oid]
        x, y = ctx.scene.pos(oid)
        DRAW[th.kind](pen, x, y, th, st, ctx)
        for k in self._children(ctx.state).get(oid, ()):
            if k != ctx.scene.carried:
                self._draw(pen, ctx, k)
        if th.kind in AFTER:
            AFTER[th.kind](pen, x, y, th, st, ctx)

    def _children(self, state: dict) -> dict[str, list[str]]:
        """container -> contents in stacking order, cached per (immutable) state snapshot."""
        if self._kids_for is not state:
            kids: dict[str, list[str]] = {}
            for o in sorted(state, key=lambda o: state[o]["z"]):
                if state[o]["at"]:
                    kids.setdefault(state[o]["at"], []).append(o)
            self._kids_for, self._kids = state, kids
        return self._kids

    def _stream(self, pen: Pen, sc: Scene) -> None:
        th = self.things[sc.carried]
        st = sc.state[sc.carried]
        col = STREAM.get(th.kind) or ((240, 205, 95) if th.kind == "box" else (150, 198, 240)
                                      if st.get("fill") == "hot water" else (95, 160, 230))
        x0, y0 = sc.pos(sc.carried)
        x1, y1 = sc.pos(sc.action.target)
        pen.line(x0 + 14, y0 + 10, x1, y1, col, 7)

    @staticmethod
    def _arm(pen: Pen, anchor, hand, grip: bool, skin, sleeve) -> None:
        """Sleeve, forearm, palm, fingers (curled when gripping) and thumb, from below the image."""
        ax, ay = anchor
        hx, hy = hand
        ang = math.degrees(math.atan2(hy - ay, hx - ax))
        wx, wy = along(hx, hy, ang + 180, 30)
        nx, ny = math.cos(math.radians(ang + 90)), math.sin(math.radians(ang + 90))
        mx, my = ax + (wx - ax) * 0.55, ay + (wy - ay) * 0.55
        pen.poly([(ax + nx * 38, ay + ny * 38), (mx + nx * 27, my + ny * 27),
                  (mx - nx * 27, my - ny * 27), (ax - nx * 38, ay - ny * 38)], sleeve)
        pen.poly([(mx + nx * 22, my + ny * 22), (wx + nx * 17, wy + ny * 17),
                  (wx - nx * 17, wy - ny * 17), (mx - nx * 22, my - ny * 22)], skin)
        dark = shade(skin, 0.8)
        if grip:
            for k in (-1.5, -0.5, 0.5, 1.5):
                pen.circle(*along(hx + nx * k * 10, hy + ny * k * 10, ang, 20), 7, dark)
        else:
            for k in (-1.5, -0.5, 0.5, 1.5):
                fx, fy = along(hx + nx * k * 10, hy + ny * k * 10, ang + k * 6, 34)
                pen.ellipse(fx, fy, 14, 5.5, ang + k * 6, skin)
        pen.ellipse(hx, hy, 29, 23, ang, skin)
        pen.ellipse(*along(hx + nx * 22, hy + ny * 22, ang, 8), 13, 6, ang + 40, mix(skin, dark, 0.5))

    def precompute(self, times: np.ndarray) -> None:
        """Camera, gain and blur for a whole video at once (vectorised; frames then look them up)."""
        self._times = np.asarray(times, np.float64)
        self._params = self.cam.params(self._times)
        self._gain = self.cam.gain(self._times)
        d = self.cam.params(self._times + 0.01) - self.cam.params(self._times - 0.01)
        vx = np.abs(d[0]) * self.w / 0.02 + np.abs(np.radians(d[2])) * self.w / 2 / 0.02
        vy = np.abs(d[1]) * self.w * 0.75 / 0.02
        length = np.hypot(vx, vy) / 30.0                     # pixels smeared in a 1/30 s exposure
        self._blur = np.where(length >= 3, np.minimum(length.astype(int) | 1, int(15 * self.s) | 1), 0)
        self._horizontal = vx >= vy

    def frame(self, k: int) -> np.ndarray:
        """The RGB frame (H, W, 3) uint8 number k of the precomputed times."""
        return self._frame(float(self._times[k]), k, self._params[:, k], float(self._gain[k]),
                           int(self._blur[k]), bool(self._horizontal[k]))

    def frame_at(self, t: float, k: int = 0, state: dict | None = None) -> np.ndarray:
        """Any time t (tests, previews); k seeds the noise offset; ``state``: see canvas()."""
        n, horizontal = blur_px(self.cam, t, self.w)
        n = min(n, int(15 * self.s) | 1)
        return self._frame(t, k, self.cam.params(np.array([t]))[:, 0], float(self.cam.gain(np.array([t]))[0]),
                           n, horizontal, state)

    def _frame(self, t: float, k: int, params: np.ndarray, gain: float, blur: int, horizontal: bool,
               state: dict | None = None) -> np.ndarray:
        H = similarity(params, self.w, self.h) @ self.P if self.ego else self.P
        img = cv2.warpPerspective(self.canvas(t, state), H, (self.w, self.h), flags=cv2.INTER_NEAREST,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=self.wall)
        if not self.noise:
            return img
        if self.ego and blur:
            img = cv2.blur(img, (blur, 1) if horizontal else (1, blur))
        m = NOISE_MARGIN
        ox, oy = (k * 7919) % (2 * m), (k * 104729 + self.look.seed) % (2 * m)
        # gain * image + noise in one saturating pass (the noise's mean acts as a black level)
        return cv2.scaleAdd(img, gain, self.tile[oy:oy + self.h, ox:ox + self.w])
