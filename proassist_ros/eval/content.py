"""Content-exact matching: does a matched prediction say what its reference says?

The paper's semantic filter (MiniLM cosine > 0.5) is lenient on the task world's templated
sentences: "It's at the front on the right" scores 0.97 against "It's at the front on the left".
For bags made by the task world (``data/world/``) the generator's vocabulary is known, so each
sentence can be reduced to a *content key* — which step (and whether it is to do, done or in
progress), which objects, which location, which counts, which slot-less act — and a matched pair
is *content-exact* iff the prediction's key agrees with the reference's on every slot the
reference names. No embedding is involved.

Extraction, on the lower-cased sentence with punctuation dropped, longest phrase first, each
found phrase cut out before the next slot is read (so "tea bag" inside a step phrase is not also
an object):

1. **steps**: every phrasing the world uses for a step of this task — the recipe text, its
   paraphrase ``alt`` (both "todo"), ``done`` ("done": "you filled the kettle") and ``ing``
   ("doing": "keep pouring …"). Where ``done`` equals the imperative ("put a tea bag into the
   cup"), "you" / "you already" before it means done, else todo.
2. **objects**: the nouns of the task's objects, the video's distractors and every distractor noun.
3. **location**: "on the left/right", "in the middle", "at the back/front".
4. **counts**: "N (more) minute(s)" / "less than a minute", "N step(s) left", "N to go" /
   "N (more) left", in words or digits.
5. **acts**: "finished" (all done / that's everything / nothing else), "last" (that's the last
   step), "now" (you're doing it right now).

Template openers ("Next,", "Good. Now", "Step one:", "Great, you …") carry no slot, so
paraphrases with the same content get the same key. A reference with no slot at all (not a world
template) is content-exact only with the same normalised text.

Bags not from the world (a user's recording, imported ProAssist data) have no vocabulary:
:func:`vocabulary_for` returns None and a reason, and the metric says "content-exact: not
available" instead of a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from proassist_ros.data.episode import Episode

NOT_AVAILABLE = "content-exact: not available"
WORLD_GENERATOR_PREFIX = "proassist_ros.world/"

TODO, DONE, DOING = "todo", "done", "doing"
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve")
_NUM = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
# (pattern, slot value); applied in order on what the steps and nouns left, each match cut out
_LOCATIONS = ((r"\b(?:on|to) the left\b", "left"), (r"\b(?:on|to) the right\b", "right"),
              (r"\bin the middle\b", "middle"), (r"\bat the back\b", "back"), (r"\bat the front\b", "front"))
_COUNTS = ((r"\bless than a minute\b", "minute", 0),
           (rf"\b{_NUM} (?:more )?minutes?\b", "minute", None),
           (rf"\b{_NUM} (?:more )?steps? (?:left|to go)\b", "step", None),
           (rf"\b{_NUM} (?:more )?(?:to go|left)\b", "left", None),
           (rf"\b{_NUM} (?:more )?rounds? (?:left|to go)\b", "round", None))
_ACTS = ((r"\bthat was the last step\b", "finished"), (r"\bthat's everything\b", "finished"),
         (r"\ball done\b", "finished"), (r"\byou're finished\b", "finished"),
         (r"\byou are finished\b", "finished"), (r"\bnothing else\b", "finished"),
         (r"\b(?:that's|that is) the last step\b", "last"), (r"\bright now\b", "now"))
_CUT = " | "  # what a found phrase is replaced by: nothing later can match across it


def normalise(text: str, *, boundaries: bool = False) -> str:
    """Lower case, curly apostrophes straightened, every other non-alphanumeric a space (with
    ``boundaries``, sentence and clause punctuation becomes "|", so no phrase matches across it:
    "Right. Now move …" does not say "right now")."""
    text = text.lower().replace("\u2019", "'")
    if boundaries:
        text = re.sub(r"[.!?;:,]+", " | ", text)
    return " ".join(re.sub(r"[^a-z0-9'|]+", " ", text).split())


def _phrase_re(phrase: str) -> re.Pattern:
    return re.compile(r"(?<![a-z0-9'])" + re.escape(phrase) + r"(?![a-z0-9'])")


@dataclass(frozen=True)
class ContentKey:
    """What a sentence says, slot by slot (empty: the sentence names nothing of that slot)."""

    steps: frozenset[tuple[int, str]] = frozenset()    # (step number from 1, todo | done | doing)
    objects: frozenset[str] = frozenset()               # nouns
    location: frozenset[str] = frozenset()              # left | right | middle | back | front
    counts: frozenset[tuple[str, int]] = frozenset()    # (minute | step | left | round, n)
    acts: frozenset[str] = frozenset()                  # finished | last | now

    SLOTS = ("steps", "objects", "location", "counts", "acts")

    def named(self) -> tuple[str, ...]:
        """The slots this sentence names."""
        return tuple(s for s in self.SLOTS if getattr(self, s))

    def __str__(self) -> str:
        parts = []
        if self.steps:
            parts.append("steps " + ", ".join(f"{i} {f}" for i, f in sorted(self.steps)))
        if self.objects:
            parts.append("objects " + ", ".join(sorted(self.objects)))
        if self.location:
            parts.append("at " + " ".join(sorted(self.location)))
        if self.counts:
            parts.append("counts " + ", ".join(f"{u} {n}" for u, n in sorted(self.counts)))
        if self.acts:
            parts.append("acts " + ", ".join(sorted(self.acts)))
        return "; ".join(parts) or "(nothing)"


def agrees(pred: ContentKey, ref: ContentKey) -> bool:
    """The prediction says what the reference says: equal on every slot the reference names
    (slots only the prediction names do not count). False when the reference names nothing."""
    named = ref.named()
    return bool(named) and all(getattr(pred, s) == getattr(ref, s) for s in named)


class WorldVocabulary:
    """The phrases of one task-world task: its steps' four phrasings and the nouns on its table."""

    def __init__(self, steps: Iterable[tuple[str, str, str, str]], nouns: Iterable[str]):
        """``steps``: (text, alt, done, ing) per recipe step, in order; ``nouns``: object nouns."""
        from proassist_ros.data.world.catalog import lower_first

        table: dict[str, set[tuple[int, str]]] = {}
        ids: dict[str, int] = {}  # equal recipe texts are one step as far as any sentence can say
        for i, (text, alt, done, ing) in enumerate(steps):
            sid = ids.setdefault(normalise(text), i + 1)
            for form, phrase in ((TODO, text), (TODO, alt), (DONE, done), (DOING, ing)):
                p = normalise(lower_first(phrase), boundaries=True)
                if p:
                    table.setdefault(p, set()).add((sid, form))
        self._steps: list[tuple[re.Pattern, int, frozenset[str]]] = []
        for p in sorted(table, key=lambda s: (-len(s), s)):
            sids = {sid for sid, _ in table[p]}
            if len(sids) > 1:
                raise ValueError(f"the step phrase {p!r} names several steps {sorted(sids)}")
            self._steps.append((_phrase_re(p), sids.pop(), frozenset(f for _, f in table[p])))
        self._nouns = [(_phrase_re(n), n) for n in sorted({normalise(n) for n in nouns if normalise(n)},
                                                         key=lambda s: (-len(s), s))]
        self.num_steps = len(ids)

    @classmethod
    def for_task(cls, task_type: str, extra_nouns: Iterable[str] = ()) -> WorldVocabulary:
        """The vocabulary of a world task type (its objects and every distractor noun added)."""
        from proassist_ros.data.world.layout import DISTRACTOR_NOUNS, DISTRACTORS
        from proassist_ros.data.world.tasks import TASKS

        task = TASKS[task_type]
        nouns = [o.noun for o in task.objects] + [DISTRACTOR_NOUNS.get(k, k) for k in DISTRACTORS]
        return cls([(s.text, s.alt, s.done, s.ing) for s in task.steps], [*nouns, *extra_nouns])

    def key(self, text: str) -> ContentKey:
        """The content key of one sentence (see the module docstring for the slots)."""
        s = normalise(text, boundaries=True)
        steps: set[tuple[int, str]] = set()

        def step_hit(m: re.Match, sid: int, forms: frozenset[str]) -> str:
            if len(forms) == 1:
                form = next(iter(forms))
            else:  # "put the pot on the hot plate" is both the imperative and the past
                before = s[: m.start()].split()
                said_done = before[-1:] == ["you"] or before[-2:] == ["you", "already"]
                form = DONE if said_done and DONE in forms else TODO if TODO in forms else sorted(forms)[0]
            steps.add((sid, form))
            return _CUT

        for pattern, sid, forms in self._steps:
            # the form test reads the words before the hit, so substitute one hit at a time
            while (m := pattern.search(s)) is not None:
                s = s[: m.start()] + step_hit(m, sid, forms) + s[m.end():]
        objects = set()
        for pattern, noun in self._nouns:
            s, n = pattern.subn(_CUT, s)
            if n:
                objects.add(noun)
        location = set()
        for pat, value in _LOCATIONS:
            s, n = re.subn(pat, _CUT, s)
            if n:
                location.add(value)
        counts = set()
        for pat, unit, fixed in _COUNTS:
            for m in re.finditer(pat, s):
                counts.add((unit, fixed if fixed is not None else _count(m.group(1))))
            s = re.sub(pat, _CUT, s)
        acts = set()
        for pat, value in _ACTS:
            s, n = re.subn(pat, _CUT, s)
            if n:
                acts.add(value)
        return ContentKey(frozenset(steps), frozenset(objects), frozenset(location), frozenset(counts),
                          frozenset(acts))

    def exact(self, prediction: str, reference: str) -> bool:
        """Is ``prediction`` right in content against ``reference``? (:func:`agrees` on their keys;
        a reference that names nothing is matched only by the same normalised text.)"""
        ref = self.key(reference)
        if not ref.named():
            return normalise(prediction) == normalise(reference)
        return agrees(self.key(prediction), ref)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS.index(word)


def vocabulary_for(episode: Episode) -> tuple[WorldVocabulary | None, str]:
    """(the world vocabulary of a bag's episode, "") or (None, why content-exact is not available).

    Available only for task-world bags: the facts name the world's generator, the task type is a
    world task, and the bag's task message lists that task's recipe steps (so a user's bag that
    only borrows a task type name gets no vocabulary). The video's own objects (facts
    ``meta.extra["objects"]``, distractors included) are added to the task's nouns.
    """
    from proassist_ros.data.world.tasks import TASKS

    meta = episode.meta
    if not (meta.generator or "").startswith(WORLD_GENERATOR_PREFIX):
        return None, f"{NOT_AVAILABLE} (not a task-world bag: no world vocabulary)"
    if meta.task_type not in TASKS:
        return None, f"{NOT_AVAILABLE} (task type {meta.task_type!r} is not a world task)"
    task = TASKS[meta.task_type]
    if episode.task is None or list(episode.task.steps) != [s.text for s in task.steps]:
        return None, f"{NOT_AVAILABLE} (the bag's task steps are not the world's {meta.task_type} recipe)"
    objects = (meta.extra or {}).get("objects") or {}
    nouns = [o["noun"] for o in objects.values() if isinstance(o, dict) and o.get("noun")]
    return WorldVocabulary.for_task(meta.task_type, nouns), ""
