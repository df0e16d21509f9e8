"""Choosing the speaking threshold θ from a validation sweep (spec §5.3).

The paper picks "the θ at the best local maximum of F1" (F1 is inverse-U shaped in θ). Here a
local maximum is a *plateau* — a maximal run of consecutive sweep points with equal F1 (a single
point is a run of one) — whose neighbours on both sides are strictly lower. At the ends of the
sweep a run has one neighbour; it counts when that neighbour is lower, unless
``allow_edge=False``, which demands an interior peak (a peak at the edge means the sweep did not
bracket the maximum and should be extended). Among local maxima the highest F1 wins, ties go to
the smallest θ; on a plateau the middle θ is returned (the lower middle for an even run), as the
point furthest from both falling sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real


def local_maxima(
    thetas: Sequence[float], f1s: Sequence[float], *, allow_edge: bool = True
) -> list[tuple[float, float]]:
    """``[(θ, F1), …]`` of every local maximum (plateau middles), in increasing θ."""
    pts = _validated(thetas, f1s)
    out = []
    start = 0
    while start < len(pts):
        end = start
        while end + 1 < len(pts) and pts[end + 1][1] == pts[start][1]:
            end += 1
        value = pts[start][1]
        left_ok = pts[start - 1][1] < value if start > 0 else allow_edge
        right_ok = pts[end + 1][1] < value if end + 1 < len(pts) else allow_edge
        if start == 0 and end == len(pts) - 1:
            left_ok = right_ok = allow_edge  # a flat (or single-point) sweep has no peak of its own
        if left_ok and right_ok:
            out.append((pts[start + (end - start) // 2][0], value))
        start = end + 1
    return out


def select_theta(thetas: Sequence[float], f1s: Sequence[float], *, allow_edge: bool = True) -> float:
    """θ at the best local maximum of F1 over a sweep (points in any order, distinct θs)."""
    peaks = local_maxima(thetas, f1s, allow_edge=allow_edge)
    if not peaks:
        raise ValueError("F1 has no interior local maximum over this θ sweep (it peaks at an edge); "
                         "extend the sweep, or pass allow_edge=True")
    best = max(f for _, f in peaks)
    return next(t for t, f in peaks if f == best)


def _validated(thetas: Sequence[float], f1s: Sequence[float]) -> list[tuple[float, float]]:
    thetas, f1s = list(thetas), list(f1s)
    if len(thetas) != len(f1s):
        raise ValueError(f"got {len(thetas)} θ values but {len(f1s)} F1 values")
    if not thetas:
        raise ValueError("the θ sweep is empty")
    for name, values in (("θ", thetas), ("F1", f1s)):
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite or non-numeric {name} values: {bad}")
    pts = sorted(zip(map(float, thetas), map(float, f1s)))
    dup = sorted({a for (a, _), (b, _) in zip(pts, pts[1:]) if a == b})
    if dup:
        raise ValueError(f"θ values repeat in the sweep: {dup}")
    return pts


select_threshold = select_theta  # the earlier name (θ is "theta" everywhere, as the node's parameter)
