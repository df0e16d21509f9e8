"""Guidance kind / priority / interrupt from an utterance (Guidance.KIND_* and PRIORITY_* values).

The model only says *what*; a TTS node and a robot need to know *how urgent*. A reply to a
user's question is an answer; warnings ("stop", "careful", "wrong") are corrections that
interrupt; praise is a confirmation; everything else an instruction.
"""

from __future__ import annotations

import re

from proassist_ros.constants import (
    KIND_ANSWER,
    KIND_CONFIRMATION,
    KIND_CORRECTION,
    KIND_INSTRUCTION,
    KIND_URGENCY,
)

_CORRECTION = re.compile(r"\b(stop|careful|wrong|mistake|instead|don't|do not|wait|not that|hold on)\b", re.I)
_CONFIRMATION = re.compile(r"^\W*(good|great|nice|perfect|well done|correct|that's right|yes|exactly)\b", re.I)


def classify(text: str, answers_user: bool) -> tuple[int, int, bool]:
    """(kind, priority, interrupt) for one utterance."""
    if _CORRECTION.search(text):
        kind = KIND_CORRECTION
    elif answers_user:
        kind = KIND_ANSWER
    elif _CONFIRMATION.search(text):
        kind = KIND_CONFIRMATION
    else:
        kind = KIND_INSTRUCTION
    return (kind, *KIND_URGENCY[kind])
