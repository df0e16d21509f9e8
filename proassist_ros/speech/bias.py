"""The task bias: the sentences a wearer is likely to say during THIS task.

pocketsphinx's general en-us language model knows 130k words and little about kitchens: on
espeak-ng renderings of the test split's user turns it gets ~72 % of the words wrong. A small
trigram model built per task from what the wearer will plausibly say brings that to 7 %
(docs/speech.md): the task's own words (goal, recipe steps, the objects they name) and the
questions wearers ask whatever the task (what next, how much is left, where is the ...,
did I already ...). The sentences below are written from the issue's list of wearer questions
and common phrasing; they are not read from the task-world generator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Questions and remarks that fit any task (lower case, no punctuation but apostrophes).
GENERAL: tuple[str, ...] = (
    "what should i do next", "what's the next step", "what is the next step", "what do i do now",
    "what do i do next", "what now", "what's next", "what comes next", "next step please",
    "how much is left", "how much is left to do", "how much longer", "how long will this take",
    "how long is left", "how many steps are left", "am i done", "am i finished",
    "is that right", "did i do that right", "what did i forget", "what am i doing",
    "say that again", "repeat that please", "thank you", "okay", "yes", "no", "stop", "wait",
)
# Ways to state the goal ("{}" = the task as a verb phrase, e.g. "make a cup of tea").
GOAL_FORMS: tuple[str, ...] = (
    "i want to {}", "i'd like to {}", "help me {} please", "help me {}", "can you help me {}",
    "i need to {}", "let's {}",
)
# Questions about an object the recipe names ("{}" = "kettle", "tea bag", ...).
OBJECT_FORMS: tuple[str, ...] = (
    "where is the {}", "where's the {}", "where did i put the {}", "i can't find the {}",
    "where are the {}", "have you seen the {}",
)
# Questions about a step ("{}" = the step as said, e.g. "fill the kettle with water").
STEP_FORMS: tuple[str, ...] = (
    "did i already {}", "did i {} already", "have i {}", "should i {}", "should i {} now",
)
_GOAL_PREFIX = re.compile(
    r"^(?:i want to|i'd like to|i would like to|help me|can you help me|i need to|let's)\s+")
_DETERMINER = re.compile(
    r"\b(?:the|a|an|some|your|my|both|two)\s+((?:[a-z'-]+\s+){0,2}?[a-z'-]+?)"
    r"(?=\s+(?:into|in|on|onto|over|with|from|to|for|and|of|under|at|back|off|out|up|down|"
    r"inside|until|so|then|again)\b|$)")


def normalize(text: str) -> str:
    """Lower case, words and apostrophes only, single spaces (how transcripts are compared)."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower().replace("’", "'")).split())


def recipe_steps(knowledge: str) -> list[str]:
    """Steps of a numbered recipe ("1. Fill the kettle.") when the task gives no list."""
    return [m.group(1) for line in knowledge.splitlines()
            if (m := re.match(r"\s*\d+[.)]\s*(.+)", line))]


def task_phrases(goal: str = "", knowledge: str = "", steps: Iterable[str] = ()) -> list[str]:
    """Verb phrases for the task: the recipe's title ("[Make a cup of tea]") and the goal
    without its "I want to" ("make a cup of tea")."""
    phrases = []
    title = re.search(r"\[([^\]]+)\]", knowledge)
    if title:
        phrases.append(normalize(title.group(1)))
    g = normalize(goal)
    g = re.sub(r"\s+please$", "", g)
    m = _GOAL_PREFIX.match(g)
    if m:
        phrases.append(g[m.end():])
    return list(dict.fromkeys(p for p in phrases if p))


def objects(texts: Iterable[str]) -> list[str]:
    """Object names the texts mention after a determiner ("the tea bag" -> "tea bag")."""
    found: dict[str, None] = {}
    for text in texts:
        for m in _DETERMINER.finditer(normalize(text)):
            found[m.group(1)] = None
    return list(found)


def task_sentences(goal: str = "", knowledge: str = "", steps: Iterable[str] = ()) -> list[str]:
    """What the wearer may say during this task (normalized, one sentence per entry).

    With no task at all this is the GENERAL list only."""
    step_list = [normalize(s) for s in (list(steps) or recipe_steps(knowledge))]
    step_list = [s for s in step_list if s]
    phrases = task_phrases(goal, knowledge, step_list)
    out = [normalize(goal)] if goal.strip() else []
    out += list(GENERAL) + step_list
    out += [form.format(p) for p in phrases for form in GOAL_FORMS]
    out += [form.format(o) for o in objects([*step_list, *phrases]) for form in OBJECT_FORMS]
    out += [form.format(s) for s in step_list for form in STEP_FORMS]
    return list(dict.fromkeys(s for s in out if s))
