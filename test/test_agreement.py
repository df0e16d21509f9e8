"""eval/agreement.py: the teacher-forced comparison replays every LLM call of a session on a
second LLM with a cache of its own, reset when the session starts a new one (IPS)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.eval.agreement import teacher_forced
from proassist_ros.model import load


def _stream(model, n=40):
    cfg = EngineConfig(theta=0.5, step_matcher="none", reply_max_tokens=4, summary_max_tokens=6,
                       context_limit=96, reserve=16, context_strategy="ips")
    rng = np.random.default_rng(0)
    events = []

    def run():
        s = AssistantSession(model, cfg)
        s.set_task("make tea", "1. boil water 2. steep")
        for i in range(n):
            r = s.push_frame(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), 0.5 * i)
            events.append(r.context_event)
    return run, events


def test_an_identical_copy_agrees_everywhere_across_ips():
    model = load("tiny", seed=4)
    run, events = _stream(model)
    stats = teacher_forced(model, copy.deepcopy(model.llm), run, theta=0.5)
    assert "ips" in events  # the shadow cache had to follow a cache reset
    assert stats.calls > 40
    assert stats.argmax_agree == stats.theta_side_agree == stats.calls
    assert stats.max_abs_dp_silence < 1e-4


def test_another_llm_disagrees():
    model = load("tiny", seed=4)
    other = copy.deepcopy(model.llm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.2 * torch.randn_like(p))
    run, _ = _stream(model)
    stats = teacher_forced(model, other, run, theta=0.5)
    assert stats.argmax_agree < stats.calls
