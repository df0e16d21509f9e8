"""The task registry: every task type, the held-out ones, and recipe (knowledge) formatting."""

from __future__ import annotations

from .catalog import TaskDef, number
from .tasks_kitchen import KITCHEN
from .tasks_other import OTHER

TASKS: dict[str, TaskDef] = {t.type: t for t in (*KITCHEN, *OTHER)}
TASK_TYPES: tuple[str, ...] = tuple(TASKS)
# Held out of train and val: a new combination of known objects and states (kettle, cup, spoon,
# milk), so the test split measures generalisation to an unseen task, not to unseen pixels.
HELD_OUT_TYPES: tuple[str, ...] = ("make_coffee",)


def knowledge(task: TaskDef, rounds: int = 1) -> str:
    """The recipe in ProAssist's format: "[task name]\\n1. ...\\n2. ..." (spec §6.1)."""
    lines = [f"[{task.title}]"] + [f"{i + 1}. {s.text}" for i, s in enumerate(task.steps)]
    if rounds > 1:
        lines.append(f"Repeat steps 1-{len(task.steps)} {rounds} times in all, "
                     f"one round at a time ({task.long_phrase.format(n=number(rounds))}).")
    return "\n".join(lines)


def _check() -> None:
    """Task definitions are data: catch a dangling object id at import, not mid-render."""
    for task in TASKS.values():
        ids = {o.oid for o in task.objects}
        for o in task.objects:
            if o.at and o.at not in ids:
                raise ValueError(f"task {task.type}: {o.oid} is in unknown object {o.at!r}")
        if not 4 <= len(task.steps) <= 12:
            raise ValueError(f"task {task.type}: {len(task.steps)} steps, need 4-12")
        for i, s in enumerate(task.steps):
            used = {s.target, s.carry} | {e[0] for e in s.effects}
            if not used - {""} <= ids:
                raise ValueError(f"task {task.type} step {i + 1}: unknown objects {used - ids - {''}}")
        for i, wrong in task.confusers:
            if wrong not in ids or not task.steps[i].carry:
                raise ValueError(f"task {task.type}: bad confuser ({i}, {wrong!r})")
    if not set(HELD_OUT_TYPES) <= set(TASKS):
        raise ValueError(f"held-out types {HELD_OUT_TYPES} not all defined")


_check()
