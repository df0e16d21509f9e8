"""A procedural egocentric task world: head-camera videos of people doing multi-step tasks,
with the reference dialogue of a proactive assistant (ProAssist, arXiv 2506.05904, spec §6).

Design, in layers (each a short module):

- ``catalog`` / ``tasks_*`` / ``tasks``: task types as data: objects with visible states (filled,
  on, open, cut, placed in/on, attached), steps with recipes, paraphrases, effects and partial
  orders (``step_groups``), confusable objects for wrong-object mistakes.
- ``layout`` / ``splits``: where things lie and what colour they are; what each split may use
  (held-out task types, reserved step orders and colours appear only in "test").
- ``script`` / ``plan``: the timeline of hand actions (reach, carry, act) with copy-on-write world
  states; idles, hesitations, look-aways, one reversible mistake in ~20% of videos, rounds for
  the >= 10 min long subset. A step's effects show at its end: that is "visibly completes".
- ``dialogue`` / ``summary``: goal, instructions 0.5-2 s after each completion, confirmations,
  corrections, answers ~1 s after questions, IPS progress summaries every 60-120 s.
- ``motion`` / ``pen`` / ``draw_*`` / ``render`` / ``camera``: hands and things drawn on the
  table plane with cv2 primitives, then one warpPerspective (perspective x ego-motion), gain +
  precomputed noise, blur only while the head moves. No text is drawn.
- ``captions``: one caption per frame from the same scene the renderer draws.

Everything is a pure function of (seed, split, index, long) (+ size, hz for pixels and caption
times); frames are rendered lazily by ``Episode.frames()``.
"""

from __future__ import annotations

from .build import GENERATOR_VERSION, make_episode, make_world
from .tasks import HELD_OUT_TYPES, TASK_TYPES

__all__ = ["GENERATOR_VERSION", "HELD_OUT_TYPES", "TASK_TYPES", "make_episode", "make_world"]
