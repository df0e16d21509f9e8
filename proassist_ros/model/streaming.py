"""Streaming inference on a KV cache: one forward per frame chunk, speak/silence, greedy replies.

Re-implements ``fast_greedy_generate`` and the per-frame step of spec §2.2 with transformers 5's
Cache API (``DynamicCache`` with block-growing layers, model/kv_cache.py, passed as ``cache=``).
All mutable per-stream state lives in ``StreamState`` (P18). Positions always continue from the
current cache length, also after ``drop_middle`` shortened it (P9: kept keys are not re-rotated,
exactly like the original).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from proassist_ros.model import decode as lean_forward
from proassist_ros.model.kv_cache import GrowingLayer, new_kv_cache
from proassist_ros.model.lookup import HISTORY_MAX, Drafter
from proassist_ros.model.modeling import ProAssistModel

FORCE_LOGIT = 1e4  # the original forces the eot logit to ±1e4 (spec §2.2 step 4c)


class FeedLog:
    """What entered a stream's cache from position ``start`` on: token ids and the frame features
    of their ``<image>`` slots, in order, so the same tokens can be fed again into another cache
    (a background IPS summary's new context, engine/summary_job.py).

    Thread-safe: the stream's thread records and truncates, a summary thread reads. ``low`` is
    the shortest length the log was cut back to (``crop``): entries from there on may have been
    replaced since a reader took them.
    """

    def __init__(self, img_token_id: int, start: int) -> None:
        self.img_token_id, self.start = img_token_id, start
        self.low = float("inf")
        self._ids: list[int] = []
        self._feats: list[torch.Tensor] = []  # one (D,) row per <image> slot
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def record(self, ids: Sequence[int], feats: torch.Tensor | None) -> None:
        with self._lock:
            self._ids += list(ids)
            if feats is not None and feats.numel():
                self._feats += list(feats.reshape(-1, feats.shape[-1]))

    def truncate(self, n: int) -> None:
        with self._lock:
            cut = sum(1 for i in self._ids[n:] if i == self.img_token_id)
            del self._ids[n:]
            if cut:
                del self._feats[-cut:]
            self.low = min(self.low, n)

    def since(self, k: int) -> tuple[list[int], torch.Tensor | None, int]:
        """Entries k… : (ids, their frame features (n_img, D) or None, the log's length)."""
        with self._lock:
            ids = self._ids[k:]
            first = sum(1 for i in self._ids[:k] if i == self.img_token_id)
            feats = torch.stack(self._feats[first:]) if len(self._feats) > first else None
            return ids, feats, len(self._ids)


@dataclass
class StreamState:
    """Per-stream KV cache; ``num_tokens`` is its length (= next position id). ``log``, when set,
    records every token fed from then on (FeedLog). ``history``: the ids fed lately (≤ 2 ×
    ``lookup.HISTORY_MAX``), the source of a reply's prompt-lookup drafts (model/lookup.py)."""

    cache: DynamicCache | None = None
    num_tokens: int = 0
    log: FeedLog | None = None
    history: list[int] = field(default_factory=list)

    @classmethod
    def new(cls) -> StreamState:
        return cls()

    def advance(self, ids: Sequence[int], feats: torch.Tensor | None) -> None:
        """Book a chunk just appended to the cache: its length, the drafting history, the log."""
        self.num_tokens += len(ids)
        self.history += ids
        if len(self.history) > 2 * HISTORY_MAX:
            del self.history[:-HISTORY_MAX]
        if self.log is not None:
            self.log.record(ids, feats)

    def clone(self) -> StreamState:
        """Independent copy (e.g. to keep Drop-Middle's initial part or to branch a stream);
        the copy records nothing."""
        return StreamState(copy.deepcopy(self.cache), self.num_tokens, history=list(self.history))


@dataclass
class FrameStep:
    """Outcome of one frame decision (spec §2.2 step 4/5).

    ``token_ids``: generated ids (header included, terminating end-of-turn excluded); empty iff
    the frame was silent. ``spoke``: the cleaned ``text`` is non-empty ("" means silence, also
    when some tokens were generated). ``finished``: the reply ended with the end-of-turn token
    (False when it was cut at ``max_new_tokens``).
    """

    p_silence: float
    spoke: bool
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finished: bool = False
    decide_s: float = 0.0  # wall time of the decision (the chunk's forward); the rest is the reply


@torch.no_grad()
def forward_chunk(
    model: ProAssistModel,
    state: StreamState,
    input_ids: Sequence[int],
    frame_feats: torch.Tensor | None = None,
    keep: Sequence[int] | None = None,
) -> torch.Tensor:
    """Append one chunk to the stream's cache; return its fp32 logits (T, V).

    ``frame_feats`` (n_img_tokens, D_llm) fill the chunk's ``<image>`` slots in order.
    ``keep``: only these positions of the chunk (negative: from its end) get logits, in that
    order — (len(keep), V). The output head (49 152 × 576 for SmolLM2) is then applied to those
    rows only; a decision reads one row, so a frame chunk need not pay the head for every token.
    """
    ids = torch.as_tensor(list(input_ids), dtype=torch.long, device=model.device)  # (T,)
    if ids.numel() == 0:
        return torch.empty(0, model.vocab_size, dtype=torch.float32, device=model.device)
    embeds = model.embed_tokens(ids, frame_feats)[None]  # (1, T, D)
    if state.cache is None:
        state.cache = new_kv_cache(model.llm.config)  # grows in blocks, no per-token copy
    # P9: positions continue from the cache length, which drop_middle may have shortened.
    positions = torch.arange(ids.numel(), device=model.device)[None] + state.num_tokens  # (1, T)
    keep_rows = None
    if keep is not None:
        t = ids.numel()
        keep_rows = torch.tensor([k % t for k in keep], dtype=torch.long, device=model.device)
    logits = lean_forward.logits(model.llm, embeds, state.cache, positions, keep_rows)  # the cache grows in place
    state.advance(ids.tolist(), frame_feats)
    return logits[0].float()  # (T, V), fp32 like transformers 4.43's up-cast


def _argmax(logits: torch.Tensor) -> int:
    return int(torch.argmax(logits).item())


@torch.no_grad()
def step_frame(
    model: ProAssistModel,
    state: StreamState,
    input_ids: Sequence[int],
    frame_feats: torch.Tensor | None,
    theta: float,
    max_new_tokens: int = 100,
    append_eot_after_reply: bool = False,
    fed_logits: torch.Tensor | None = None,
    lookahead: int = 0,
) -> FrameStep:
    """One frame decision: feed the chunk, decide, maybe reply (spec §2.2 step 4).

    Silent iff P(silence) > θ, P from an fp32 softmax at the chunk's last position (the last
    visual token). θ ≤ 0 disables the rule: plain argmax. When speaking, the silence logit is
    forced down and the argmax taken (normally the first header token, not forced to be, P21),
    then greedy decoding feeds each token until the end-of-turn token or ``max_new_tokens``
    generated tokens (header included). As in the original the final token — the end-of-turn
    token or the one at the limit — is not fed back, unless ``append_eot_after_reply`` (P1), in
    which case the cache ends with ``reply<eot>`` as in training.

    ``lookahead`` > 0: each forward also feeds up to that many drafted tokens (model/lookup.py) and
    keeps those the greedy argmax confirms — the same reply in fewer forwards.

    ``fed_logits``: the chunk was already fed (a batched forward over several streams,
    engine/batch.py); these are its last position's logits, and the step goes on from them.
    """
    chat = model.chat
    silence = chat.silence_id
    t0 = time.perf_counter()
    if fed_logits is None:
        last = forward_chunk(model, state, input_ids, frame_feats, keep=[-1])[-1]  # (V,) fp32
    else:
        last = fed_logits.float()
    p_silence = float(torch.softmax(last, dim=-1)[silence].item())
    decide_s = time.perf_counter() - t0
    if theta > 0:
        if p_silence > theta:
            return FrameStep(p_silence, False, decide_s=decide_s)
        last = last.clone()
        last[silence] = -FORCE_LOGIT
    first = _argmax(last)
    if first == silence or max_new_tokens <= 0:
        return FrameStep(p_silence, False, decide_s=decide_s)

    tokens, finished = _greedy_reply(model, state, first, max_new_tokens, lookahead)
    if append_eot_after_reply:
        forward_chunk(model, state, ([] if finished else tokens[-1:]) + [silence], keep=[-1])
    text = chat.clean_reply(tokens)
    return FrameStep(p_silence, bool(text), tokens, text, finished, decide_s)


def _greedy_reply(model: ProAssistModel, state: StreamState, first: int, max_new_tokens: int,
                  lookahead: int) -> tuple[list[int], bool]:
    """Greedy tokens after ``first`` until the end-of-turn token (``finished``) or the limit.

    Every forward feeds the last token and, with ``lookahead``, a draft d₁…d_k after it; row j's
    argmax is the greedy token after d_j, so the reply takes d₁, d₂, … while each equals the
    argmax before it, then the first argmax that differs (or follows the last draft). Rows past
    the last taken token are cut from the cache, which then holds exactly what one-token-at-a-time
    decoding leaves: the reply except its final token (the end-of-turn token: all of it).
    """
    silence = model.chat.silence_id
    drafter = Drafter(state.history, lookahead, stop_id=model.chat.img_token_id) if lookahead > 0 else None
    tokens = [first]
    while len(tokens) < max_new_tokens:
        guess = drafter.draft(tokens)[: max_new_tokens - len(tokens) - 1] if drafter else []
        start = state.num_tokens
        logits = forward_chunk(model, state, tokens[-1:] + guess)  # (1 + len(guess), V)
        for j in range(len(logits)):
            nxt = _argmax(logits[j])  # one argmax per token taken, as one-token decoding takes them
            if nxt == silence or len(tokens) + 1 >= max_new_tokens or j == len(guess) or guess[j] != nxt:
                break
            tokens.append(nxt)  # the draft's d_{j+1}, confirmed: already fed
        if j < len(guess):  # keep the last token and the confirmed drafts
            crop(state, start + j + 1)
            del state.history[len(state.history) - (len(guess) - j):]
        if nxt == silence:
            return tokens, True
        tokens.append(nxt)
    return tokens, False


def crop(state: StreamState, length: int) -> None:
    """Cut the cache (and its log) back to ``length`` positions, e.g. to take a reply back."""
    if state.cache is None or state.num_tokens <= length:
        return
    for layer in state.cache.layers:
        if isinstance(layer, GrowingLayer):
            layer.truncate(length)  # keeps the buffer: the next token is written in place
        else:
            layer.keys = layer.keys[..., :length, :]
            layer.values = layer.values[..., :length, :]
    state.num_tokens = length
    if state.log is not None:
        state.log.truncate(max(length - state.log.start, 0))


def drop_middle(state: StreamState, keep_prefix: int, keep_last: int) -> None:
    """Keep the first ``keep_prefix`` and the last ``keep_last`` cached positions (spec §3.3).

    The tail starts at ``max(len − keep_last, keep_prefix)``. Keys are not re-rotated (P9); the
    next chunk's positions continue from the new, shorter length.
    """
    n = state.num_tokens
    if state.cache is None or n <= keep_prefix + keep_last:
        return
    tail = max(n - keep_last, keep_prefix)
    for layer in state.cache.layers:
        layer.keys = torch.cat([layer.keys[..., :keep_prefix, :], layer.keys[..., tail:, :]], dim=-2)
        layer.values = torch.cat([layer.values[..., :keep_prefix, :], layer.values[..., tail:, :]], dim=-2)
    state.num_tokens = keep_prefix + (n - tail)
