"""Task knowledge: recipe text → steps, and the "Task knowledge: ..." message (spec §2.4, P19)."""

from __future__ import annotations

import re

from .config import KNOWLEDGE_PREFIX

# "1. Boil water", "2) Add tea", "Step 3: Pour", "- 4. Stir" — one step per numbered line.
_NUMBERED = re.compile(r"^\s*(?:[-*•]\s*)?(?:step\s*)?(\d{1,3})\s*[.):\-]\s*(\S.*)$", re.IGNORECASE)


def parse_steps(recipe: str) -> list[str]:
    """The numbered lines of a recipe, in order; [] when it has fewer than two numbered lines.

    Continuation lines (indented, unnumbered) are appended to the step above them.
    """
    steps: list[str] = []
    for line in recipe.splitlines():
        m = _NUMBERED.match(line)
        if m:
            steps.append(m.group(2).strip())
        elif steps and line.startswith((" ", "\t")) and line.strip():
            steps[-1] = f"{steps[-1]} {line.strip()}"
    return steps if len(steps) >= 2 else []


def knowledge_message(recipe: str) -> str:
    """The system-message content that carries a recipe (the prefix is detected by the paper)."""
    return KNOWLEDGE_PREFIX + recipe.strip()
