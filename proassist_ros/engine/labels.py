"""Guidance kind / priority / interrupt from an utterance (Guidance.KIND_* and PRIORITY_* values).

The model only says *what*; a TTS node and a robot need to know *how urgent*. A reply to a
user's question is an answer; warnings ("stop", "careful", "wrong") are corrections that
interrupt; praise is a confirmation; everything else an instruction.
"""

from __future__ import annotations

import re

KIND_INSTRUCTION, KIND_CORRECTION, KIND_CONFIRMATION, KIND_ANSWER, KIND_PROGRESS_SUMMARY, KIND_OTHER = range(6)
PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_HIGH, PRIORITY_URGENT = range(4)

_CORRECTION = re.compile(r"\b(stop|careful|wrong|mistake|instead|don't|do not|wait|not that|hold on)\b", re.I)
_CONFIRMATION = re.compile(r"^\W*(good|great|nice|perfect|well done|correct|that's right|yes|exactly)\b", re.I)


def classify(text: str, answers_user: bool) -> tuple[int, int, bool]:
    """(kind, priority, interrupt) for one utterance."""
    if _CORRECTION.search(text):
        return KIND_CORRECTION, PRIORITY_HIGH, True
    if answers_user:
        return KIND_ANSWER, PRIORITY_HIGH, False
    if _CONFIRMATION.search(text):
        return KIND_CONFIRMATION, PRIORITY_LOW, False
    return KIND_INSTRUCTION, PRIORITY_NORMAL, False
