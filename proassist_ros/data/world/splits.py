"""Train / val / test: which task type, which step order, and what the test split holds back.

Promises of the test split: (1) the held-out task types appear only there; (2) some step orders
that a task's partial order allows are never used in train/val (``reserved_orders``); (3) some
colours are never used in train/val (catalog.PALETTES). Task types are dealt in seeded blocks so
every block of ``len(types)`` consecutive indices covers every type of the split once.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np

from .catalog import TaskDef
from .tasks import HELD_OUT_TYPES, TASK_TYPES

SPLITS = ("train", "val", "test")


def episode_rng(seed: int, split: str, index: int, long: bool) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if index < 0 or seed < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed} index={index}")
    return np.random.default_rng([seed, SPLITS.index(split), index, int(long), 0x5EED])


def task_type_for(seed: int, split: str, index: int) -> str:
    """Deal task types in blocks: a seeded permutation of the split's types per block."""
    types = [t for t in TASK_TYPES if split == "test" or t not in HELD_OUT_TYPES]
    block, pos = divmod(index, len(types))
    perm = np.random.default_rng([seed, SPLITS.index(split), block, 0xB10C]).permutation(len(types))
    return types[int(perm[pos])]


def all_orders(task: TaskDef) -> list[tuple[int, ...]]:
    """Every step order the recipe's partial order allows (runs of equal group numbers permute)."""
    runs: list[list[int]] = []
    for i, g in enumerate(task.groups):
        if runs and task.groups[runs[-1][-1]] == g:
            runs[-1].append(i)
        else:
            runs.append([i])
    per_run = [list(itertools.permutations(r)) for r in runs]
    return [tuple(i for part in combo for i in part) for combo in itertools.product(*per_run)]


def reserved_orders(task: TaskDef) -> set[tuple[int, ...]]:
    """Orders kept for the test split: a stable ~quarter of the non-recipe orders, at least one."""
    canonical = tuple(range(len(task.steps)))
    others = [o for o in all_orders(task) if o != canonical]
    held = {o for o in others if zlib.crc32(f"{task.type}:{o}".encode()) % 4 == 0}
    if others and not held:
        held = {max(others)}
    return held


def choose_order(task: TaskDef, split: str, rng: np.random.Generator) -> tuple[tuple[int, ...], bool]:
    """(order, unseen): train/val never get a reserved order; test gets one half of the time."""
    orders = all_orders(task)
    held = reserved_orders(task)
    if split == "test" and held and rng.random() < 0.5:
        pool = sorted(held)
    else:
        pool = [o for o in orders if o not in held]
    order = pool[int(rng.integers(len(pool)))]
    return order, order in held
