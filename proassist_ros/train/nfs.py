"""Negative frame sub-sampling (NFS, spec §4.2): which silent decision points are learned.

Silence is the answer at ~90–98 % of decision points; learning all of them teaches the model to
never speak (paper Table 6: ρ = 1 gives action-narration F1 30.1 vs 58.7 at ρ = 0.1). Per frames
turn with n frames, its n−1 in-turn negatives are thinned to ``max(int(ρ·(n−1)), 1)``, drawn
uniformly without replacement; positives and assistant tokens are always learned.

The paper re-draws in the collator, i.e. every time a sample is loaded. Here the draw is a pure
function of (seed, epoch, sample index): every epoch sees new negatives, and a resumed run or
another DDP rank draws exactly what an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layout import IGNORE


def keep_count(n_negatives: int, rho: float) -> int:
    """How many of a frames turn's ``n_negatives`` in-turn negatives are learned at rate ρ."""
    if n_negatives <= 0 or rho < 0:
        return 0
    if rho >= 1:
        return n_negatives
    return min(max(int(rho * n_negatives), 1), n_negatives)


def nfs_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(index), 0x4E46])


def subsample(labels: Sequence[int], negatives: Sequence[Sequence[int]], rho: float,
              rng: np.random.Generator) -> list[int]:
    """A copy of ``labels`` with the unselected negatives set to IGNORE (inputs are unchanged)."""
    out = list(labels)
    for group in negatives:
        k = keep_count(len(group), rho)
        if k == len(group):
            continue
        keep = set(rng.choice(len(group), size=k, replace=False).tolist()) if k else set()
        for j, pos in enumerate(group):
            if j not in keep:
                out[pos] = IGNORE
    return out
