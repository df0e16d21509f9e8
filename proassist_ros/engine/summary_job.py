"""IPS in the background: the summary is written on a copy of the cache while frames go on.

Why: IPS (spec §3.1) asks the model for a progress summary of up to ``summary_max_tokens``
tokens when the cache reaches L − reserve. Written in the stream's own thread, a summary of a
few dozen tokens stops every decision for seconds on a CPU (docs/performance.md, ``ips_stall_s``).
The paper runs offline and does not say; a live assistant must keep watching.

How (``EngineConfig.ips_background``):

1. At the trigger frame the session *forks* its cache (``StreamState.clone``) and starts a
   ``SummaryJob`` on the fork: the same request, the same greedy decoding at θ_summary, the same
   summary text as the synchronous IPS would write at that frame (engine/context.py).
2. Meanwhile the stream keeps deciding frames on its old cache, inside the reserve; everything it
   feeds (frames, user turns, replies) is recorded in a ``FeedLog``.
3. The job builds the new context — BOS + system prompt, summary, knowledge: the prefix that
   synchronous IPS would put in front of the next frame — and feeds what the log holds so far.
4. At the first frame end after the job is done, the session takes the new cache, feeds the
   little the log gained since, and goes on from there. So the new context holds exactly the
   tokens synchronous IPS would have given it (prefix, then the frames and replies since the
   trigger), as training lays out ``summary`` then the next frames.

What differs from synchronous IPS: the frames during the summary are decided on the old context
(the cue to speak is still there, the summary not yet), and the cache may pass L by at most one
frame and one reply when the summary is not done by then (the session then waits for it).
"""

from __future__ import annotations

import threading
import time

import torch

from proassist_ros.model.streaming import FeedLog, StreamState, crop, forward_chunk

from . import context as ctx
from .config import EngineConfig


def replay(model, state: StreamState, log: FeedLog, k: int) -> int:
    """Feed the log's entries k… into ``state``; returns the log's length (what is now fed)."""
    ids, feats, end = log.since(k)
    if ids:
        forward_chunk(model, state, ids, feats, keep=[-1])
    return end


class SummaryJob:
    """One background IPS summary for one stream; the stream's ``state`` starts recording."""

    def __init__(self, model, state: StreamState, cfg: EngineConfig, frame_feats: torch.Tensor,
                 knowledge: str, threads: int = 1) -> None:
        self.model, self.cfg, self.knowledge = model, cfg, knowledge
        self.feats = frame_feats
        self.threads = threads
        self.fork = state.clone()  # (layers × K/V, B, H_kv, T, d): a copy the job may extend
        self.log = state.log = FeedLog(model.chat.img_token_id, state.num_tokens)
        self.outcome: ctx.ContextOutcome | None = None
        self.new_state: StreamState | None = None
        self.prefix_len = 0
        self.replayed = 0
        self.error: BaseException | None = None
        self.cancelled = False
        self.job_s = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ips-summary", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            # intra-op threads are set per calling thread: the summary takes `threads` cores and
            # leaves the rest to the stream's decisions
            torch.set_num_threads(self.threads)
            with torch.inference_mode():
                self.outcome = ctx.iterative_progress_summarization(self.model, self.fork, self.cfg,
                                                                    self.feats, self.knowledge)
                self.fork = None
                new = StreamState.new()
                forward_chunk(self.model, new, self.outcome.prefix_ids, keep=[-1])
                self.prefix_len = new.num_tokens
                for _ in range(4):  # catch up with the stream; the hand-over feeds the rest
                    if self.cancelled:
                        return
                    end = replay(self.model, new, self.log, self.replayed)
                    if end == self.replayed:
                        break
                    self.replayed = end
                self.new_state = new
        except BaseException as e:  # noqa: BLE001 - re-raised in the stream's thread at hand-over
            self.error = e
        finally:
            self.job_s = time.perf_counter() - t0
            self.done.set()

    def cancel(self) -> None:
        """The stream was reset: the result will not be used."""
        self.cancelled = True

    def hand_over(self) -> tuple[ctx.ContextOutcome, StreamState]:
        """Wait for the job; return its outcome and the new state, brought level with the log.

        Entries the stream took back (``crop``, a repeat removed) are cut from the new state too,
        then whatever the job has not fed yet is fed here."""
        self.done.wait()
        if self.error is not None:
            raise RuntimeError(f"background IPS summary failed: {self.error}") from self.error
        assert self.outcome is not None and self.new_state is not None
        new, valid = self.new_state, int(min(self.replayed, self.log.low))
        crop(new, self.prefix_len + valid)
        replay(self.model, new, self.log, valid)
        return self.outcome, new
