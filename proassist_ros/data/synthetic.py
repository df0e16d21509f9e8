"""A synthetic egocentric "make tea" stream: the shipped sample data for demos and benchmarks.

No real egocentric video ships with the project (the ProAssist dataset is 152 GB and not on any
package registry), so the demo renders one: a table seen from above with a kettle, a cup and a
tea bag, and a hand that performs the recipe's steps in order. It is deterministic (seeded), so
bags, demos and benchmarks are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

RECIPE = """1. Fill the kettle with water and switch it on.
2. Put a tea bag into the cup.
3. Pour the hot water into the cup.
4. Remove the tea bag after three minutes."""
GOAL = "I want to make a cup of tea."
STEP_SECONDS = (8.0, 6.0, 6.0, 8.0)


def step_at(t: float) -> int:
    """Index of the recipe step being performed at stream time t (the last one after the end)."""
    acc = 0.0
    for i, d in enumerate(STEP_SECONDS):
        acc += d
        if t < acc:
            return i
    return len(STEP_SECONDS) - 1


def render(t: float, size: tuple[int, int] = (480, 640), seed: int = 0) -> np.ndarray:
    """The RGB frame (H, W, 3) uint8 at stream time t."""
    h, w = size
    rng = np.random.default_rng(seed + int(t * 1000))
    img = np.full((h, w, 3), (150, 120, 90), np.uint8)  # wooden table
    img = cv2.add(img, rng.integers(0, 12, (h, w, 3), dtype=np.uint8))  # sensor noise
    step = step_at(t)
    kettle = (int(w * 0.25), int(h * 0.45))
    cup = (int(w * 0.65), int(h * 0.55))
    cv2.rectangle(img, (kettle[0] - 50, kettle[1] - 60), (kettle[0] + 50, kettle[1] + 60), (200, 200, 210), -1)
    if step >= 0:  # kettle light on once filled
        cv2.circle(img, (kettle[0], kettle[1] + 45), 8, (255, 40, 40) if t > 4 else (60, 60, 60), -1)
    cv2.circle(img, cup, 45, (240, 240, 240), -1)
    if step >= 2:  # tea in the cup
        cv2.circle(img, cup, 35, (120, 70, 30), -1)
    if step in (1, 2):  # tea bag in the cup
        cv2.rectangle(img, (cup[0] - 10, cup[1] - 12), (cup[0] + 12, cup[1] + 12), (220, 200, 150), -1)
    # the hand moves to where the current step happens
    target = [kettle, cup, kettle, cup][step]
    phase = np.sin(t * 2.0)
    hand = (int(target[0] + 60 + 20 * phase), int(target[1] + 80 + 10 * phase))
    cv2.ellipse(img, hand, (45, 30), 30, 0, 360, (225, 180, 150), -1)
    cv2.putText(img, f"t={t:5.1f}s", (10, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    return img


def stream(seconds: float, fps: float = 2.0, size: tuple[int, int] = (480, 640)) -> Iterator[tuple[float, np.ndarray]]:
    """(stamp_s, rgb) pairs at ``fps`` from t = 1/fps (spec §2.1: frame k has stamp (k+1)/fps)."""
    n = int(round(seconds * fps))
    for k in range(n):
        t = (k + 1) / fps
        yield t, render(t, size)
