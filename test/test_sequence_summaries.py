"""summary_at_every_reference on long world episodes, where reference cuts and length cuts mix:
every reference gives one summary turn, every reply is trained once, no chunk exceeds L, and a
chunk that follows a reference cut goes on with the very next frame (as the engine after IPS)."""

from __future__ import annotations

import bisect

import pytest

from proassist_ros.data.episode import spoken_references
from proassist_ros.data.world import make_episode
from proassist_ros.engine.config import SUMMARY_QUERY
from proassist_ros.model import load
from proassist_ros.train.sequence import SequenceConfig, build_samples


def _count(seq: list[int], sub: list[int]) -> int:
    return sum(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


@pytest.mark.parametrize("per, limit", [(1, 512), (1, 1024), (10, 1024)])
def test_every_reference_gives_one_summary_turn_with_length_cuts_between(per, limit):
    chat = load("tiny", tokens_per_frame=per).chat
    ep = make_episode(0, "train", 1, size=(64, 48), hz=2, long=True)
    times = [k / 2 for k in range(round(ep.meta.duration_s * 2))]
    cfg = SequenceConfig(context_limit=limit, reserve=limit // 8, summary_at_every_reference=True)
    samples = build_samples(ep, times, chat, knowledge=True, cfg=cfg, seed=1)
    refs = [r for r in ep.references if r.kind == "progress_summary"]
    assert len(refs) >= 6
    assert all(len(s) <= limit for s in samples)
    # Each reference is the summary of exactly one chunk that ends on its frame (none waits for a
    # reply here); length cuts add more summary turns (a reference's text or a built one).
    ends = {s.frames[-1]: s.summary for s in samples if s.summary}
    for r in refs:
        assert ends.get(bisect.bisect_right(times, r.t) - 1) == r.text.strip(), r.t
    assert (limit == 1024 and per == 1) == (len(ends) == len(refs))  # I = 1, L = 1024: no length cut
    query = chat.message_ids("system", SUMMARY_QUERY)
    assert sum(_count(s.input_ids, query) for s in samples) == len(samples) - 1
    said = [r.text for r in spoken_references(ep)]
    replies = sum(_count(s.input_ids, chat.message_ids("assistant", t)) for s in samples for t in set(said))
    assert replies == len(said)
    ref_frames = {bisect.bisect_right(times, r.t) - 1 for r in refs}
    for s, nxt in zip(samples, samples[1:]):
        if s.frames[-1] in ref_frames:   # a reference cut: nothing skipped
            assert nxt.frames[0] == s.frames[-1] + 1
