"""Drawing in table units: cv2 primitives with sub-pixel positions, scaled to the canvas.

Drawers speak in table units (a 960 x 720 table); the pen scales to the canvas size, keeps
fractional positions (cv2 ``shift``) so slow motion stays smooth at small sizes, and applies the
episode's colour cast to every colour (cheaper than a per-channel pass over each frame).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_SHIFT = 3
_ONE = 1 << _SHIFT
AA = cv2.LINE_AA

Colour = tuple[int, int, int]


def shade(c: Colour, f: float) -> Colour:
    return (min(255, int(c[0] * f)), min(255, int(c[1] * f)), min(255, int(c[2] * f)))


def mix(a: Colour, b: Colour, w: float) -> Colour:
    return (int(a[0] + (b[0] - a[0]) * w), int(a[1] + (b[1] - a[1]) * w), int(a[2] + (b[2] - a[2]) * w))


class Pen:
    def __init__(self, img: np.ndarray, scale: float, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        self.img, self.s, self.tint = img, scale, tint
        self._k = scale * _ONE
        self.zoom, self._cx, self._cy = 1.0, 0.0, 0.0

    def c(self, rgb: Colour) -> tuple[int, int, int]:
        t = self.tint
        return (min(255, int(rgb[0] * t[0])), min(255, int(rgb[1] * t[1])), min(255, int(rgb[2] * t[2])))

    def _p(self, x: float, y: float) -> tuple[int, int]:
        if self.zoom != 1.0:
            x, y = self._cx + (x - self._cx) * self.zoom, self._cy + (y - self._cy) * self.zoom
        return int(round(x * self._k)), int(round(y * self._k))

    def _th(self, th: float) -> int:
        return -1 if th < 0 else max(1, int(round(th * self.s * self.zoom)))

    def lifted(self, x: float, y: float, zoom: float) -> Pen:
        """A pen that draws everything enlarged about (x, y): a thing lifted toward the camera."""
        pen = Pen(self.img, self.s, self.tint)
        pen.zoom, pen._cx, pen._cy = zoom, x, y
        return pen

    def circle(self, x: float, y: float, r: float, rgb: Colour, th: float = -1) -> None:
        cv2.circle(self.img, self._p(x, y), max(1, int(r * self._k * self.zoom)), self.c(rgb), self._th(th), AA,
                   _SHIFT)

    def ellipse(self, x: float, y: float, ax: float, ay: float, ang: float, rgb: Colour,
                th: float = -1, a0: float = 0, a1: float = 360) -> None:
        axes = (max(1, int(ax * self._k * self.zoom)), max(1, int(ay * self._k * self.zoom)))
        cv2.ellipse(self.img, self._p(x, y), axes, ang, a0, a1, self.c(rgb), self._th(th), AA, _SHIFT)

    def poly(self, pts, rgb: Colour, th: float = -1) -> None:
        arr = np.asarray(pts, np.float64)
        if self.zoom != 1.0:
            arr = (arr - (self._cx, self._cy)) * self.zoom + (self._cx, self._cy)
        arr = np.round(arr * self._k).astype(np.int32)
        if th < 0:
            cv2.fillPoly(self.img, [arr], self.c(rgb), AA, _SHIFT)
        else:
            cv2.polylines(self.img, [arr], True, self.c(rgb), self._th(th), AA, _SHIFT)

    def rect(self, x: float, y: float, w: float, h: float, rgb: Colour, ang: float = 0.0,
             th: float = -1) -> None:
        """A w x h rectangle centred on (x, y), rotated by ang degrees."""
        self.poly(box_points(x, y, w, h, ang), rgb, th)

    def line(self, x0: float, y0: float, x1: float, y1: float, rgb: Colour, th: float = 2) -> None:
        cv2.line(self.img, self._p(x0, y0), self._p(x1, y1), self.c(rgb), self._th(th), AA, _SHIFT)

    def dots(self, x: float, y: float, pattern: np.ndarray, spread: float, r: float, rgb: Colour,
             n: int | None = None) -> None:
        """Small discs at a fixed pattern (unit-disc points) scaled by spread around (x, y)."""
        for px, py in pattern[:n]:
            self.circle(x + px * spread, y + py * spread, r, rgb)


def box_points(x: float, y: float, w: float, h: float, ang: float) -> list[tuple[float, float]]:
    a = math.radians(ang)
    ca, sa = math.cos(a), math.sin(a)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out.append((x + dx * ca - dy * sa, y + dx * sa + dy * ca))
    return out


def along(x: float, y: float, ang: float, d: float) -> tuple[float, float]:
    """The point d units from (x, y) in direction ang (degrees)."""
    a = math.radians(ang)
    return x + d * math.cos(a), y + d * math.sin(a)


def _pattern(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, (n * 3, 2))
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) <= 1.0]
    return pts[:n]


# fixed scatter patterns (the same every frame, so contents do not flicker)
PATTERN_A, PATTERN_B, PATTERN_C = _pattern(11, 40), _pattern(12, 40), _pattern(13, 40)
