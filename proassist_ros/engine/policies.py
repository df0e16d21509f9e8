"""Talk policies beyond the paper: minimum gap, talk budget, repeat suppression (all off by default).

The paper speaks whenever P(silence) ≤ θ. On a wearable rig an assistant that talks every frame
is unusable, so these limits sit between the model's decision and the user. They act on stream
time (frame stamps), so bag replays give the same result at any speed.
"""

from __future__ import annotations

import difflib
import re
from collections import deque

from .config import EngineConfig

_WS = re.compile(r"\W+")


def _normalise(text: str) -> str:
    return _WS.sub(" ", text.lower()).strip()


class TalkPolicy:
    """Decides whether the model may speak at a frame, and whether a reply repeats the last one."""

    def __init__(self) -> None:
        self._spoken_at: deque[float] = deque()
        self._last_text = ""

    def reset(self) -> None:
        self._spoken_at.clear()
        self._last_text = ""

    def may_speak(self, cfg: EngineConfig, stamp_s: float) -> str:
        """"" when speaking is allowed at stamp_s, else the name of the blocking policy."""
        if cfg.min_gap_s > 0 and self._spoken_at and stamp_s - self._spoken_at[-1] < cfg.min_gap_s:
            return "min_gap"
        if cfg.talk_budget_per_min > 0:
            while self._spoken_at and stamp_s - self._spoken_at[0] >= 60.0:
                self._spoken_at.popleft()
            if len(self._spoken_at) >= cfg.talk_budget_per_min:
                return "talk_budget"
        return ""

    def is_repeat(self, cfg: EngineConfig, text: str) -> bool:
        if not cfg.suppress_repeats or not self._last_text:
            return False
        ratio = difflib.SequenceMatcher(None, _normalise(text), _normalise(self._last_text)).ratio()
        return ratio >= cfg.repeat_similarity

    def record(self, stamp_s: float, text: str) -> None:
        self._spoken_at.append(stamp_s)
        if len(self._spoken_at) > 1000:
            self._spoken_at.popleft()
        self._last_text = text
