"""Prompt-lookup drafts for greedy replies: guess the next tokens by copying from the context.

Why: on CPU a reply token is memory-bound — every token reads the whole LLM once (~12 ms of a
~15 ms int8 token on 2 cores, docs/performance.md). Feeding several tokens in one forward reads the
weights once for all of them. A reply here often repeats text already in the stream's context:
the recipe's step ("Add the milk to the bowl"), the task's objects, an earlier reply's phrasing.
So the tokens that followed the last few generated tokens where they last occurred in the context
are a good guess of what comes next (prompt-lookup decoding, Saxena 2023; the n-gram drafter of
transformers' ``prompt_lookup_num_tokens``). ``streaming.step_frame`` feeds the guess together
with the last generated token and keeps the longest prefix the model itself would have chosen,
plus the model's own next token. Greedy decoding stays exact: the output is the argmax at every
position, a wrong guess only costs the rows it occupied (they are cut from the cache).

The history is what entered the stream's cache (``StreamState.history``), kept as token ids
only; it may hold tokens the cache has since dropped (drop-middle, IPS), which is harmless: a
draft is a proposal, never an output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HISTORY_MAX = 4096   # ids kept per stream for drafting: the system prompt, recipe and recent turns
# Chosen on the 4 sample bags (docs/performance.md, "Prompt-lookup replies"): one-token matches
# guess wrong too often to pay for their rows, and past 3 tokens a draft is mostly rejected.
NGRAM_MAX = 3        # match the last 3 tokens first, then 2 (transformers' default maximum is 3)
NGRAM_MIN = 2
DRAFT_MAX = 3        # tokens guessed per forward by default (EngineConfig.reply_lookahead)
LOOKAHEAD_MAX = 16   # the most a session may ask for: 17 rows, within the fused int8 decode's 32


class Drafter:
    """Drafts for one reply from the stream's ``history`` (fixed while the reply is generated)
    and the reply's own tokens so far.

    ``draft(generated)`` gives up to ``k`` tokens that followed the latest earlier occurrence of
    the longest suffix (``ngram_min`` … ``ngram_max`` tokens) of ``history + generated``, or []
    when nothing matches. Newest first, so a phrase the model used a moment ago wins over the recipe's; the
    reply's own tokens are searched too (a repeated list, "… then … then …"). A draft ends
    before ``stop_id`` (the ``<image>`` placeholder: a frame's slot, never a reply token)."""

    def __init__(self, history: Sequence[int], k: int = DRAFT_MAX, ngram_max: int = NGRAM_MAX,
                 ngram_min: int = NGRAM_MIN, stop_id: int | None = None) -> None:
        hist = list(history)[-HISTORY_MAX:]
        self.k, self.ngram_max, self.ngram_min, self.stop_id = k, ngram_max, ngram_min, stop_id
        self._seq = np.empty(len(hist) + 256, dtype=np.int64)  # history, then the reply: (capacity,)
        self._seq[: len(hist)] = hist
        self._hist_len = self._len = len(hist)

    def draft(self, generated: Sequence[int]) -> list[int]:
        self._sync(generated)
        if self.k <= 0:
            return []
        seq, m = self._seq, self._len
        for n in range(min(self.ngram_max, m - 1), self.ngram_min - 1, -1):
            tail = seq[m - n:m]
            cand = np.flatnonzero(seq[: m - n] == tail[0])  # starts with a token after them: ≤ m-n-1
            for j in range(1, n):
                cand = cand[seq[cand + j] == tail[j]]
            if cand.size:
                c = int(cand[-1]) + n
                guess = seq[c:min(c + self.k, m)].tolist()
                return guess[:guess.index(self.stop_id)] if self.stop_id in guess else guess
        return []

    def _sync(self, generated: Sequence[int]) -> None:
        """Make the sequence ``history + generated`` (the reply only grows between calls)."""
        need = self._hist_len + len(generated)
        if need > len(self._seq):
            self._seq = np.concatenate([self._seq, np.empty(need + 256 - len(self._seq), dtype=np.int64)])
        self._seq[self._len:need] = list(generated)[self._len - self._hist_len:]
        self._len = need
