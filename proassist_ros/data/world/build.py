"""One episode from (seed, split, index, long): the world, its timeline, dialogue and captions.

The random stream is consumed in a fixed order that does not involve size or hz (set-up, order,
plan, dialogue, camera, look), so an episode's content is the same at every resolution and
frame rate; only the frame grid and the captions' times follow hz.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..episode import Episode, EpisodeMeta, TaskSpec
from . import plan
from .camera import CameraPath, similarity
from .captions import captions
from .catalog import COLOURS, TaskDef
from .dialogue import Dialogue, number
from .layout import SKIN, SLEEVES, WOOD_TABLE, Thing, set_up
from .render import Look, Renderer, perspective
from .script import Timeline
from .splits import SPLITS, choose_order, episode_rng, task_type_for
from .summary import add_summaries
from .tasks import HELD_OUT_TYPES, TASKS, knowledge

GENERATOR_VERSION = "proassist_ros.world/1"
QUESTIONS = {"no_talk": (0, 0), "talk_some": (1, 2), "talk_more": (3, 5)}


@dataclass
class World:
    """Everything about one episode except pixels (frames are drawn from this on demand)."""

    task: TaskDef
    things: dict[str, Thing]
    timeline: Timeline
    camera: CameraPath
    look: Look
    dialogue: Dialogue
    unseen: dict

    def renderer(self, size: tuple[int, int], ego: bool = True, noise: bool = True,
                 hands: bool = True) -> Renderer:
        return Renderer(self.things, self.timeline, self.camera, self.look, size, ego, noise, hands)


def make_world(seed: int, split: str, index: int, long: bool = False) -> World:
    rng = episode_rng(seed, split, index, long)
    task = TASKS[task_type_for(seed, split, index)]
    test = split == "test"
    things, state0 = set_up(task, rng, test)
    order0, unseen_order = choose_order(task, split, rng)
    order_rng = np.random.default_rng([seed, SPLITS.index(split), index, int(long), 0x0DE5])

    def order_for_round(r: int) -> tuple[int, ...]:
        return order0 if r == 0 else choose_order(task, split, order_rng)[0]

    mistake = bool(rng.random() < 0.2)
    tl = plan.build(task, things, state0, rng, order_for_round, long, mistake)
    rounds = len(tl.rounds)
    d = Dialogue(task, things, tl, rng, task.long_phrase.format(n=number(rounds)) if rounds > 1 else task.goal_phrase)
    d.script()
    user_type = str(rng.choice(list(QUESTIONS), p=[0.2, 0.4, 0.4]))
    lo, hi = QUESTIONS[user_type]
    n_q = int(rng.integers(lo, hi + 1))
    d.ask(int(round(n_q * max(1.0, tl.end / 200.0))))
    d.summaries = add_summaries(d)
    d.user_type = user_type
    cam = CameraPath.random(rng, tl.end, tl.lookaways)
    seen_tables, unseen_tables = WOOD_TABLE
    table_unseen = test and rng.random() < 0.3
    table = unseen_tables[0] if table_unseen else seen_tables[int(rng.integers(len(seen_tables)))]
    sleeve_unseen = test and rng.random() < 0.5
    sleeve = str(rng.choice(SLEEVES[1] if sleeve_unseen else SLEEVES[0]))
    look = Look(table, SKIN[int(rng.integers(len(SKIN)))], COLOURS[sleeve],
                tuple(float(v) for v in rng.uniform(0.93, 1.07, 3)), float(rng.uniform(1.5, 4.0)),
                int(rng.integers(2**31)))
    unseen = {"task_type": task.type in HELD_OUT_TYPES, "order": unseen_order,
              "colours": sorted(o for o, t in things.items() if t.unseen),
              "table": table_unseen, "sleeve": sleeve_unseen}
    return World(task, things, tl, cam, look, d, unseen)


def homographies(world: World, size: tuple[int, int]):
    """t -> (n, 3, 3) maps from table units to a unit image (for caption visibility)."""
    w, h = size
    P = perspective(w, h, 1.0)
    norm = np.diag([1.0 / w, 1.0 / h, 1.0])

    def f(times: np.ndarray) -> np.ndarray:
        params = world.camera.params(times)
        return np.stack([norm @ similarity(params[:, k], w, h) @ P for k in range(len(times))])
    return f


def _meta(world: World, split: str, seed: int, index: int, long: bool, size, hz: float, n: int) -> EpisodeMeta:
    tl, d, task = world.timeline, world.dialogue, world.task
    steps = [dict(r, text=task.steps[r["step"]].text) for r in tl.steps]
    extra = {
        "domain": task.domain, "rounds": len(tl.rounds), "orders": [list(o) for o in tl.orders],
        "user_type": d.user_type, "steps": steps, "mistakes": tl.mistakes, "questions": d.questions,
        "summaries": d.summaries, "lookaways": [list(p) for p in tl.lookaways],
        "objects": {o: {"kind": t.kind, "noun": t.noun, "colour": t.colour, "distractor": t.distractor}
                    for o, t in world.things.items()},
        "caption_rate": "per_frame", "unseen": world.unseen, "end_s": tl.end,
    }
    vid = f"world{seed}_{split}_{index:05d}{'_long' if long else ''}"
    return EpisodeMeta(vid, split, task.type, seed, GENERATOR_VERSION, n / hz, hz, size[0], size[1],
                       bool(tl.mistakes), long, extra)


def make_episode(seed: int, split: str, index: int, *, size: tuple[int, int] = (640, 480),
                 hz: float = 10.0, long: bool = False) -> Episode:
    w, h = _check(seed, split, index, size, hz)
    world = make_world(seed, split, index, long)
    n = int(np.ceil(world.timeline.end * hz - 1e-9))
    times = np.arange(n) / hz
    task, d = world.task, world.dialogue
    rounds = len(world.timeline.rounds)
    spec = TaskSpec(goal=d.users[0].text, knowledge=knowledge(task, rounds),
                    steps=[s.text for s in task.steps], task_type=task.type,
                    task_id=task.type if rounds == 1 else f"{task.type}x{rounds}", step_groups=task.groups)

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        r = world.renderer((w, h))
        r.precompute(times)
        for k in range(n):
            yield float(times[k]), r.frame(k)

    return Episode(_meta(world, split, seed, index, long, (w, h), hz, n), spec,
                   sorted(d.users, key=lambda u: u.t), sorted(d.refs, key=lambda r: r.t),
                   captions(world.timeline, world.things, times, homographies(world, (w, h))), frames)


def _check(seed, split, index, size, hz) -> tuple[int, int]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    for name, v in (("seed", seed), ("index", index)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and 32 <= v <= 4096 for v in size):
        raise ValueError(f"size must be (width, height), each an int in 32..4096, got {size!r}")
    if not (isinstance(hz, (int, float)) and 0.1 <= hz <= 120):
        raise ValueError(f"hz must be a number in 0.1..120, got {hz!r}")
    return int(size[0]), int(size[1])
