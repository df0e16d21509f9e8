"""Episode <-> ProAssist dialogue JSON (spec §6.1): the mapping, without frames or files.

ProAssist stores one video object per video, with a list of conversations whose assistant turns
carry ``labels`` ("initiativity|intent,intent") and ``progress`` (the progress summary at that
turn). Our episodes carry one dialogue and reference turns with a ``kind``. The mapping:

- kinds -> labels: instruction "initiative|instruction", correction "initiative|correction",
  confirmation "initiative|feedback", answer "responsive|info_sharing", other "initiative|other";
- labels -> kind: correction if it is an intent; else answer if responsive; else instruction,
  feedback (-> confirmation), info_sharing (-> instruction), other, in that order; unlabelled
  turns are "other";
- a progress_summary reference becomes the ``progress`` of the assistant turn at the same time
  (within 0.5 ms); with no such turn it is written as an assistant turn with empty ``content``
  and the summary in ``progress``. On import every non-empty ``progress`` becomes a
  progress_summary reference at its turn's time, right after the turn.

Everything ProAssist's format has no field for (task type and id, steps, step groups, captions,
all facts, frame times) goes into an extra key ``proassist_ros`` that ProAssist's tools ignore,
and a user turn's kind ("goal", "question") into an extra ``kind`` key of that turn, so
bag -> JSON -> bag loses nothing.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from proassist_ros.data.episode import UNSPOKEN_KIND, Caption, Episode, EpisodeMeta, TaskSpec, Turn, is_spoken
from proassist_ros.data.schema import FORMAT

EXTRA_KEY = "proassist_ros"
LABELS: dict[str, str] = {
    "instruction": "initiative|instruction",
    "correction": "initiative|correction",
    "confirmation": "initiative|feedback",
    "answer": "responsive|info_sharing",
    "other": "initiative|other",
}
_SAME_TIME_S = 0.0005
_STEP = re.compile(r"^\s*(\d+)[.)]\s+(.+?)\s*$")


def kind_from_labels(labels: str | None) -> str:
    """The reference kind of a ProAssist assistant turn from its ``labels`` string."""
    if not labels:
        return "other"
    init, sep, intents = labels.partition("|")
    if not sep:
        init, intents = "", labels
    names = {s.strip().lower() for s in intents.split(",") if s.strip()}
    if "correction" in names:
        return "correction"
    if init.strip().lower() == "responsive":
        return "answer"
    for intent, kind in (("instruction", "instruction"), ("feedback", "confirmation"),
                         ("info_sharing", "instruction")):
        if intent in names:
            return kind
    return "other"


def steps_from_knowledge(knowledge: str) -> list[str]:
    """The numbered lines of a recipe ("1. Fill the kettle." -> "Fill the kettle.")."""
    return [m.group(2) for line in knowledge.splitlines() if (m := _STEP.match(line))]


def episode_to_video(ep: Episode, frame_times: list[float], fps: float) -> dict[str, Any]:
    """One ProAssist video object (one conversation) for an episode whose frames were exported
    at ``frame_times`` (file k of frames/{video_uid}/ is at frame_times[k])."""
    meta, task = ep.meta, ep.task
    turns: list[tuple[float, int, int, dict]] = [
        (u.t, 0, i, {"role": "user", "time": u.t, "content": u.text, **({"kind": u.kind} if u.kind else {})})
        for i, u in enumerate(ep.user_turns)]
    spoken = [(i, r) for i, r in enumerate(ep.references) if is_spoken(r.kind)]
    assistant = {i: {"role": "assistant", "time": r.t, "content": r.text, "labels": LABELS[r.kind]}
                 for i, r in spoken}
    for i, r in enumerate(ep.references):
        if is_spoken(r.kind):
            continue
        host = next((assistant[j] for j, s in reversed(spoken)
                     if abs(s.t - r.t) < _SAME_TIME_S and "progress" not in assistant[j]), None)
        if host is not None:
            host["progress"] = r.text
            if host["time"] != r.t:
                host["progress_time"] = r.t
        else:
            assistant[i] = {"role": "assistant", "time": r.t, "content": "", "labels": "",
                            "progress": r.text}
    turns += [(turn["time"], 1, i, turn) for i, turn in assistant.items()]
    conversation = [turn for *_, turn in sorted(turns, key=lambda e: e[:3])]
    steps = task.steps if task else []
    return {
        "video_uid": meta.video_id,
        "inferred_goal": task.goal if task else "",
        "inferred_knowledge": task.knowledge if task else "",
        "video_labels": [],
        "gen_args": {"generator": meta.generator, "seed": meta.seed},
        "parsed_video_anns": {
            "dataset": "proassist_ros", "domain": meta.extra.get("domain", ""),
            "knowedge_type": "recipe", "video_uid": meta.video_id,
            "goal_description": task.goal if task else "",
            "all_step_descriptions": "\n".join(steps), "clips": [],
            "duration": meta.duration_s, "ann_ratio": 1.0, "num_steps": len(steps),
            "video_start_time": 0.0, "has_mistake": meta.has_mistake, "num_substeps": 0,
            "fps": fps, "original_ann": None,
        },
        "conversations": [{"user_type": meta.extra.get("user_type", ""), "auto_quality_eval": {},
                           "conversation": conversation}],
        EXTRA_KEY: {
            "format": FORMAT,
            "meta": dataclasses.asdict(meta),
            "task": None if task is None else {"task_type": task.task_type, "task_id": task.task_id,
                                               "steps": task.steps, "step_groups": task.step_groups},
            "captions": [[c.t, c.text] for c in ep.captions],
            "frame_times": frame_times,
        },
    }


def video_to_episodes(video: dict[str, Any], where: str = "video") -> list[Episode]:
    """One Episode per conversation of a ProAssist video object (frames are attached by the
    caller). Episode ids: the video_uid, suffixed ``_c{k}`` when the video has several
    conversations."""
    if not isinstance(video, dict) or not video.get("video_uid"):
        raise ValueError(f"{where}: not a ProAssist video object (no video_uid)")
    uid = str(video["video_uid"])
    convs = video.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise ValueError(f"{where} ({uid}): no conversations")
    extra = video.get(EXTRA_KEY) or {}
    anns = video.get("parsed_video_anns") or {}
    task = _task(video, extra)
    out = []
    for k, conv in enumerate(convs):
        name = uid if len(convs) == 1 else f"{uid}_c{k}"
        if extra.get("meta"):
            meta = EpisodeMeta(**extra["meta"])
            meta.video_id = name
        else:
            meta = EpisodeMeta(video_id=name, duration_s=float(anns.get("duration") or 0.0),
                               hz=float(anns.get("fps") or 0.0),
                               has_mistake=bool(anns.get("has_mistake", False)),
                               generator="proassist_json",
                               extra={"source_video_uid": uid, "conversation": k,
                                      "user_type": conv.get("user_type", "")})
        users, refs = _turns(conv.get("conversation"), f"{where} ({uid}) conversation {k}")
        captions = [Caption(float(t), str(text)) for t, text in extra.get("captions", [])]
        out.append(Episode(meta=meta, task=task, user_turns=users, references=refs,
                           captions=captions))
    return out


def _task(video: dict, extra: dict) -> TaskSpec | None:
    goal, knowledge = video.get("inferred_goal") or "", video.get("inferred_knowledge") or ""
    if "task" in extra:
        if extra["task"] is None:
            return None
        return TaskSpec(goal=goal, knowledge=knowledge, **extra["task"])
    if not goal and not knowledge:
        return None
    return TaskSpec(goal=goal, knowledge=knowledge, steps=steps_from_knowledge(knowledge))


def _turns(conversation: Any, where: str) -> tuple[list[Turn], list[Turn]]:
    if not isinstance(conversation, list):
        raise ValueError(f"{where}: 'conversation' must be a list of turns")
    users: list[Turn] = []
    refs: list[Turn] = []
    for i, turn in enumerate(conversation):
        role = turn.get("role") if isinstance(turn, dict) else None
        try:
            t = float(turn["time"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: turn {i} has no numeric 'time'") from None
        content = str(turn.get("content") or "")
        if role == "user":
            users.append(Turn(t, content, str(turn.get("kind") or "")))
        elif role == "assistant":
            if content:
                refs.append(Turn(t, content, kind_from_labels(turn.get("labels"))))
            if turn.get("progress"):
                refs.append(Turn(float(turn.get("progress_time", t)), str(turn["progress"]),
                                 UNSPOKEN_KIND))
        else:
            raise ValueError(f"{where}: turn {i} has role {role!r}; expected user or assistant")
    return users, refs
