"""Context management when the KV cache reaches L − reserve (spec §3): IPS, Drop-Middle, Drop-All.

Each strategy mutates the session's StreamState and returns what the next frame must be
prefixed with. IPS is the paper's method; Drop-Middle is its StreamingLLM-like baseline (P9: the
kept keys are not re-rotated); Drop-All is in the released config but unused by the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from proassist_ros.model.streaming import StreamState, drop_middle, step_frame

from .config import SUMMARY_QUERY, EngineConfig


@dataclass
class ContextOutcome:
    event: str                 # "ips" | "drop_middle" | "drop_all"
    prefix_ids: list[int]      # to prepend to the next frame's input
    summary: str = ""
    summary_tokens: int = 0


def system_content(cfg: EngineConfig, summary: str, knowledge: str) -> str:
    """The rebuilt system prompt: original + " " + summary [+ " " + knowledge] (spec §3.1 step 4)."""
    content = f"{cfg.system_prompt} {summary}"
    if knowledge:
        content += f" {knowledge}"
    return content


def iterative_progress_summarization(model, state: StreamState, cfg: EngineConfig,
                                     frame_feats: torch.Tensor, knowledge: str) -> ContextOutcome:
    """IPS (spec §3.1): ask for a summary on top of the full cache, then restart from it.

    The request is a system message "Please summarize the progress." followed by the current
    frame's I tokens (its features embedded a second time), decoded greedily at θ_summary (0.5 in
    the paper, P12: if P(silence) > θ_summary the summary is empty). The summary ends like a
    reply: with ``append_eot_after_reply`` its end-of-turn token is fed, as training lays out
    ``summary<eot>`` (train/sequence.py). The cache is then dropped and the next frame starts
    with BOS + one system message carrying prompt, summary, knowledge — where training's next
    chunk starts — so nothing the model sees afterwards depends on that token.
    """
    chat = model.chat
    request = chat.message_ids("system", SUMMARY_QUERY) + chat.image_ids(1)
    step = step_frame(model, state, request, frame_feats, cfg.summary_theta,
                      max_new_tokens=cfg.summary_max_tokens, lookahead=cfg.reply_lookahead,
                      append_eot_after_reply=cfg.append_eot_after_reply)
    summary = step.text.strip()
    state.cache, state.num_tokens = None, 0  # positions restart at 0
    prefix = chat.bos_ids() + chat.message_ids("system", system_content(cfg, summary, knowledge))
    return ContextOutcome("ips", prefix, summary, len(step.token_ids))


def drop_middle_strategy(model, state: StreamState, cfg: EngineConfig,
                         init_len: int | None) -> ContextOutcome:
    """Drop-Middle (spec §3.3): keep the initial part (up to the first user turn's step) + the
    last ``drop_middle_keep_last`` positions. Without a user turn yet, everything is dropped —
    system prompt included, exactly as the original. When the initial part alone is too long to
    leave room, it falls back to dropping everything.
    """
    if init_len is None or init_len + cfg.drop_middle_keep_last >= cfg.trigger_tokens:
        state.cache, state.num_tokens = None, 0
        return ContextOutcome("drop_middle", [])
    drop_middle(state, init_len, cfg.drop_middle_keep_last)
    return ContextOutcome("drop_middle", [])


def drop_all(model, state: StreamState, cfg: EngineConfig, knowledge: str) -> ContextOutcome:
    """Drop-All (spec §3.4). Deviation: the original keeps only the pending prefix (normally
    empty, so even the system prompt is gone); we re-seed BOS + system prompt + knowledge so the
    assistant keeps its instructions.
    """
    chat = model.chat
    state.cache, state.num_tokens = None, 0
    content = cfg.system_prompt + (f" {knowledge}" if knowledge else "")
    return ContextOutcome("drop_all", chat.bos_ids() + chat.message_ids("system", content))
