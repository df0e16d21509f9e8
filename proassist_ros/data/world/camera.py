"""The head camera: ego-motion, lighting and sensor noise, all precomputed from the seed.

Motion is a similarity transform in image space (fractions of the image, so the same path at
every resolution): slow drift (a few sinusoids), quick head turns that return (1 - cos bumps),
and look-aways that swing the table out of view. Combined with the fixed table perspective it
is ONE warpPerspective per frame. Motion blur follows the head's angular speed (exposure
~1/30 s), so it does not depend on the frame rate. Lighting is a per-frame gain (slow swell +
occasional switches); noise is a precomputed tile shifted by a per-frame offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NOISE_MARGIN = 32


def _bump(t: np.ndarray, t0: float, dur: float) -> np.ndarray:
    u = np.clip((t - t0) / dur, 0.0, 1.0)
    return 0.5 * (1 - np.cos(2 * np.pi * u))


def _plateau(t: np.ndarray, a: float, b: float, ramp: float = 0.5) -> np.ndarray:
    up = np.clip((t - a) / ramp, 0, 1)
    down = np.clip((b - t) / ramp, 0, 1)
    u = np.minimum(up, down)
    return u * u * (3 - 2 * u)


@dataclass
class CameraPath:
    """Deterministic camera parameters as functions of time (vectorised)."""

    drift: np.ndarray        # (4 params, 3 terms, 3: amp, freq, phase)
    turns: list[tuple[float, float, float, float, float]]     # t0, dur, dx, dy, drot
    aways: list[tuple[float, float, float, float, float]]     # a, b, dx, dy, drot
    lights: list[tuple[float, float]]                         # t, gain step
    gain0: float
    swell: tuple[float, float, float]                         # amp, freq, phase

    @classmethod
    def random(cls, rng: np.random.Generator, duration: float,
               lookaways: list[tuple[float, float]]) -> CameraPath:
        amps = np.array([0.012, 0.010, 0.5, 0.012])          # tx, ty (image fractions), rot (deg), zoom
        drift = np.zeros((4, 3, 3))
        drift[:, :, 0] = amps[:, None] * rng.uniform(0.5, 1.0, (4, 3))
        drift[:, :, 1] = rng.uniform(0.03, 0.25, (4, 3))
        drift[:, :, 2] = rng.uniform(0, 2 * np.pi, (4, 3))
        turns, t = [], float(rng.uniform(3, 12))
        while t < duration:
            turns.append((t, float(rng.uniform(0.8, 2.0)), float(rng.choice([-1, 1]) * rng.uniform(0.04, 0.12)),
                          float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-3, 3))))
            t += float(rng.uniform(6, 20))
        aways = []
        for a, b in lookaways:
            side = int(rng.integers(3))
            dx, dy = ((-1.35, 0.1), (1.35, 0.1), (0.05, 1.2))[side]
            aways.append((a, b, dx, dy, float(rng.uniform(-8, 8))))
        lights = [(float(rng.uniform(0, duration)), float(rng.choice([-1, 1]) * rng.uniform(0.06, 0.16)))
                  for _ in range(int(duration // 60) + int(rng.integers(0, 2)))]
        return cls(drift, turns, aways, lights, float(rng.uniform(0.85, 1.1)),
                   (float(rng.uniform(0.02, 0.06)), float(rng.uniform(0.01, 0.05)), float(rng.uniform(0, 6.3))))

    def params(self, t: np.ndarray) -> np.ndarray:
        """(4, len(t)): tx, ty (fractions of the image), rotation (degrees), zoom."""
        t = np.asarray(t, np.float64)
        out = np.zeros((4, t.size))
        for k in range(4):
            for amp, f, ph in self.drift[k]:
                out[k] += amp * np.sin(2 * np.pi * f * t + ph)
        out[0] += 0.0015 * np.sin(2 * np.pi * 1.9 * t) + 0.001 * np.sin(2 * np.pi * 3.1 * t)
        out[1] += 0.0015 * np.sin(2 * np.pi * 2.3 * t + 1)
        for t0, dur, dx, dy, dr in self.turns:
            b = _bump(t, t0, dur)
            out[0] += dx * b
            out[1] += dy * b
            out[2] += dr * b
        for a, bb, dx, dy, dr in self.aways:
            p = _plateau(t, a, bb)
            out[0] += dx * p
            out[1] += dy * p
            out[2] += dr * p
        out[3] += 1.0
        return out

    def gain(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)
        amp, f, ph = self.swell
        g = self.gain0 * (1 + amp * np.sin(2 * np.pi * f * t + ph))
        for tl, step in self.lights:
            g = g + step * np.clip((t - tl) / 0.8, 0, 1)
        return np.clip(g, 0.6, 1.3)


def similarity(p: np.ndarray, w: int, h: int) -> np.ndarray:
    """3x3 image-space ego-motion for one parameter column (tx, ty, rot, zoom)."""
    tx, ty, rot, zoom = p
    a = math.radians(rot)
    c, s = zoom * math.cos(a), zoom * math.sin(a)
    cx, cy = w / 2, h / 2
    return np.array([[c, -s, cx - c * cx + s * cy + tx * w],
                     [s, c, cy - s * cx - c * cy + ty * h],
                     [0, 0, 1]])


def blur_px(cam: CameraPath, t: float, width: int) -> tuple[int, bool]:
    """Motion-blur length in pixels (0: none) and whether it is mostly horizontal."""
    d = cam.params(np.array([t + 0.01]))[:, 0] - cam.params(np.array([t - 0.01]))[:, 0]
    vx = abs(d[0]) * width / 0.02 + abs(math.radians(d[2])) * width / 2 / 0.02
    vy = abs(d[1]) * width * 0.75 / 0.02
    length = math.hypot(vx, vy) / 30.0                       # pixels smeared in a 1/30 s exposure
    return (int(length) | 1 if length >= 3 else 0), vx >= vy


def noise_tile(rng: np.random.Generator, w: int, h: int, sigma: float, bias: int) -> np.ndarray:
    """uint8 noise centred on ``bias`` (the renderer subtracts bias in its lighting LUT)."""
    m = NOISE_MARGIN
    n = rng.normal(bias, sigma, (h + 2 * m, w + 2 * m, 3))
    return np.clip(np.round(n), 0, 2 * bias).astype(np.uint8)
