"""Several sessions, one model: the newest frame of each stream decided in one batched forward.

Why: one process serving several wearers (or cameras) shares one copy of the weights, and the
per-frame decision forwards — most frames are silent — run together (model/batched.py), so the
weights are read once per round instead of once per wearer. Replies, context management (IPS,
drop-middle) and everything else stay per session, exactly as ``AssistantSession.push_frame``
does them: a session's outputs equal those of the same session run alone, up to the float
rounding of batched products (test/test_batched_sessions.py).

``push_frames_together(sessions, frames)``: frame i goes to session i; all sessions share one
model. Each session's lock is held for the round (locks are taken in a fixed order).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
import torch

from proassist_ros.model.batched import forward_chunks_batched

from .session import AssistantSession, FrameResult


def push_frames_together(sessions: Sequence[AssistantSession],
                         frames: Sequence[tuple[np.ndarray, float]]) -> list[FrameResult]:
    """One frame (RGB, stamp) per session; returns one ``FrameResult`` per session, in order."""
    if len(sessions) != len(frames):
        raise ValueError(f"{len(frames)} frames for {len(sessions)} sessions")
    if not sessions:
        return []
    model = sessions[0].model
    if any(s.model is not model for s in sessions):
        raise ValueError("sessions batched together must share one model")
    if len({id(s) for s in sessions}) != len(sessions):
        raise ValueError("a session appears twice in one batch (give it its frames one at a time)")
    with ExitStack() as stack:
        for s in sorted(sessions, key=id):
            stack.enter_context(s._lock)
        stack.enter_context(torch.inference_mode())
        t0 = time.perf_counter()
        feats = model.embed_frames([np.asarray(f) for f, _ in frames])  # (N, I, D)
        vision_s = (time.perf_counter() - t0) / len(frames)
        built = [s._build(feats[i], float(stamp), last=True) for i, (s, (_, stamp)) in enumerate(zip(sessions, frames))]
        t1 = time.perf_counter()
        lasts = forward_chunks_batched(model, [s._state for s in sessions], [(f.ids, f.feats) for f in built])
        decide_s = (time.perf_counter() - t1) / len(sessions)
        results = []
        for s, f, last in zip(sessions, built, lasts):
            t2 = time.perf_counter()
            r = s._decide(f, fed=last)
            r.timings.update(vision_s=vision_s, decide_s=decide_s + r.timings.get("decide_s", 0.0),
                             llm_s=decide_s + time.perf_counter() - t2)
            results.append(r)
        return results
