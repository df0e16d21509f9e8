"""Summary targets at every progress_summary reference (issue 16, item 3).

A bag with two ``progress_summary`` references, neither anywhere near the context limit, gives
training samples with two summary turns (``summary_at_every_reference``, on for ``proassist
train``), and each is laid out exactly as the engine's IPS lays it out: ``AssistantSession`` with
the tiny model, IPS forced at the references' frames, feeds — token for token and frame for
frame — the samples' input ids: the body, the request "Please summarize the progress.", the
reference frame again, the summary with its end-of-turn token, then the restarted context.

The engine is teacher-forced as in test_train_infer_alike.py: its greedy step returns the
samples' targets in order (decision labels at each frame, then reply / summary tokens), so it
says the reference replies and summaries, and everything it *feeds* comes from its own code.
"""

from __future__ import annotations

import bisect

import numpy as np
import pytest
import torch
from helpers.teacher_forcing import record_fed

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.config import SUMMARY_QUERY
from proassist_ros.engine.context import system_content
from proassist_ros.engine.knowledge import knowledge_message
from proassist_ros.model import load
from proassist_ros.runtime.sampling import sampled_frames
from proassist_ros.train.cli import config_from_args, parser
from proassist_ros.train.config import TrainConfig
from proassist_ros.train.data import make_samples, read_bags
from proassist_ros.train.sequence import Sample, SequenceConfig, build_samples

GOAL = "I want to make a cup of tea."
RECIPE = "1. Fill the kettle\n2. Switch it on\n3. Put a tea bag in the cup\n4. Pour the water"
SUM1 = "The time elapsed since the start of the task is 12.2 seconds. The kettle is filled and on."
SUM2 = "The time elapsed since the start of the task is 46.1 seconds. The tea bag is in the blue cup."
HZ, N = 2.0, 120  # 60 s of frames at the node's 2 FPS


def _frame(k: int) -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([(x * 8 + k * 3) % 256, (y * 10) % 256, np.full_like(x, k % 256)], -1).astype(np.uint8)


def tea_episode() -> Episode:
    """Two summary references 34 s apart: the first on the frame of a confirmation (the engine
    speaks, then summarises) and 21 s before the next turn (the engine goes on with the next
    frame: a later chunk must not skip the silent stretch), the second between two replies; a
    question in each part."""
    users = [Turn(0.2, GOAL, "goal"), Turn(5.1, "Where is the kettle?", "question"),
             Turn(38.0, "Which cup should I use?", "question")]
    refs = [Turn(1.1, "Fill the kettle with water.", "instruction"),
            Turn(5.2, "It is on the left counter.", "answer"),
            Turn(8.3, "Switch the kettle on.", "instruction"),
            Turn(12.0, "Good, the kettle is on.", "confirmation"),
            Turn(12.2, SUM1, "progress_summary"),
            Turn(33.6, "Put a tea bag in the cup.", "instruction"),
            Turn(38.3, "The blue cup.", "answer"),
            Turn(41.4, "Pour the hot water into the cup.", "instruction"),
            Turn(46.1, SUM2, "progress_summary"),
            Turn(49.5, "Wait three minutes, then take the tea bag out.", "instruction"),
            Turn(55.0, "Well done, your tea is ready.", "confirmation")]
    return Episode(EpisodeMeta("tea_summaries", "train", "make_tea", hz=HZ, duration_s=N / HZ),
                   TaskSpec(GOAL, RECIPE, []), users, refs,
                   frames=lambda: ((k / HZ, _frame(k)) for k in range(N)))


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """The episode written as a bag and read back as training reads it."""
    root = tmp_path_factory.mktemp("bags")
    write_episode(tea_episode(), root / "tea_summaries")
    (b,) = read_bags([root])
    times = [t for t, _ in sampled_frames(b.episode, HZ, b.t0_ns)]
    assert len(times) == N
    return b, times


CASES = [("chatml", 1), ("llama3", 5)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-I{c[1]}")
def case(request, bag):
    fmt, per = request.param
    b, times = bag
    model = load("tiny", chat_format=fmt, tokens_per_frame=per)
    # The default layout, context far from full: only the option makes the summary turns.
    cfg = SequenceConfig(context_limit=4096, reserve=128, summary_at_every_reference=True)
    feats = {b.episode.meta.video_id: (torch.zeros(N, per, 8), times)}
    samples = make_samples([b], feats, model.chat, cfg, knowledge_mix=True, seed=3)
    return model, b.episode, times, samples


def ref_frame(times: list[float], t: float) -> int:
    """A reference's frame: the last one at or before its time (the node's decision point)."""
    return bisect.bisect_right(times, t) - 1


def run_engine(model, episode: Episode, times: list[float], knowledge: bool, samples: list[Sample],
               monkeypatch) -> tuple[list[list[int]], list[list[int]], list]:
    """Teacher-forced engine over the stream, IPS forced right after the references' frames;
    returns the fed token streams (one per cache reset), their frame rows and the results."""
    per = model.config.tokens_per_frame
    calls = record_fed(model, samples, monkeypatch)
    roomy = {"context_limit": 100_000, "reserve": 128}
    session = AssistantSession(model, EngineConfig(theta=0.0, summary_theta=0.0, step_matcher="none",
                                                   append_eot_after_reply=True, **roomy))
    session.set_task(episode.task.goal, RECIPE if knowledge else "")
    ips_at = {ref_frame(times, r.t) for r in episode.references if r.kind == "progress_summary"}
    feats = torch.stack([torch.full((per, model.llm.config.hidden_size), (k + 1) / 100) for k in range(N)])
    pending, results = sorted(episode.user_turns, key=lambda u: u.t), []
    for k, t in enumerate(times):
        while pending and pending[0].t <= t:
            u = pending.pop(0)
            session.push_user_utterance(u.text, u.t)
        if k in ips_at:  # the trigger (L − reserve) at the cache length before this frame + 1
            now = session.context_tokens
            session.update_config(context_limit=2 * now, reserve=now - 1)
        results.append(session.push_embedded(feats[k:k + 1], [t])[0])
        if k in ips_at:
            assert results[-1].context_event == "ips", f"IPS not forced at frame {k}"
            session.update_config(**roomy)
    streams: list[list[int]] = []
    rows: list[list[int]] = []
    for fresh, ids, r in calls:
        if fresh:
            streams.append([])
            rows.append([])
        streams[-1] += ids
        rows[-1] += r[::per]
    return streams, rows, results


def summary_turn(chat, summary: str) -> list[int]:
    """The engine's IPS prompt and the summary it says: request, the frame again, the summary."""
    return (chat.message_ids("system", SUMMARY_QUERY) + chat.image_ids(1)
            + chat.message_ids("assistant", summary))


@pytest.mark.parametrize("knowledge", [True, False], ids=["klg", "noklg"])
def test_two_references_give_two_summary_turns_fed_alike_by_the_engine(case, knowledge, monkeypatch):
    model, episode, times, all_samples = case
    chat = model.chat
    samples = [s for s in all_samples if s.knowledge == knowledge]
    # Two summary turns, one per reference, in the order of the references; then the rest.
    assert [s.summary for s in samples] == [SUM1, SUM2, ""]
    firsts = [ref_frame(times, 12.2), ref_frame(times, 46.1)]
    for s, f, text in zip(samples, firsts, (SUM1, SUM2)):
        tail = summary_turn(chat, text)
        assert s.input_ids[-len(tail):] == tail
        assert s.frames[-2:] == [f, f]                # the body ends on the reference's frame
        start = len(s.input_ids) - len(tail) + len(chat.message_ids("system", SUMMARY_QUERY))
        decision = start + chat.tokens_per_frame - 1
        assert s.labels[decision] == chat.speak_id    # the request frame speaks the summary
        assert s.labels[decision + 1:-1] == s.input_ids[decision + 2:]   # every summary token learned
    assert samples[1].frames[0] == firsts[0] + 1 and samples[2].frames[0] == firsts[1] + 1
    klg = knowledge_message(RECIPE) if knowledge else ""
    for s, nxt in zip(samples, samples[1:]):
        head = chat.bos_ids() + chat.message_ids("system", system_content(EngineConfig(), s.summary, klg))
        assert nxt.input_ids[:len(head)] == head
    assert samples[0].input_ids[:len(chat.bos_ids())] == chat.bos_ids()

    streams, rows, results = run_engine(model, episode, times, knowledge, samples, monkeypatch)
    assert [r.summary for r in results if r.context_event] == [SUM1, SUM2]
    assert len(streams) == 3
    for k, (s, stream, fed_rows) in enumerate(zip(samples, streams, rows)):
        last = k == len(samples) - 1   # the engine goes on after the last reply; training ends there
        fed = stream[:len(s.input_ids)] if last else stream
        assert fed == s.input_ids, f"chunk {k}: the engine fed another layout than training"
        assert (fed_rows[:len(s.frames)] if last else fed_rows) == s.frames, f"chunk {k}: frames differ"
        if not last:   # the IPS event itself: what the engine fed after the body
            tail = summary_turn(chat, s.summary)
            assert stream[-len(tail):] == tail == s.input_ids[-len(tail):]
    said = [r.text for r in results if r.spoke]
    assert said == [r.text for r in episode.references if r.kind != "progress_summary"]


def test_without_the_option_the_bag_fits_one_sample_with_no_summary(bag):
    """The layout before: the context never fills, so nothing teaches a summary."""
    b, times = bag
    model = load("tiny")
    cfg = SequenceConfig(context_limit=4096, reserve=128)
    assert not cfg.summary_at_every_reference
    (s,) = build_samples(b.episode, times, model.chat, knowledge=True, cfg=cfg)
    assert s.summary == "" and not contains(s.input_ids, model.chat.message_ids("system", SUMMARY_QUERY))
    on = build_samples(b.episode, times, model.chat, knowledge=True,
                       cfg=SequenceConfig(context_limit=4096, reserve=128, summary_at_every_reference=True))
    replies = [r for r in b.episode.references if r.kind != "progress_summary"]
    for r in replies:   # each reply trained exactly once either way
        ids = model.chat.message_ids("assistant", r.text)
        count = sum(x.input_ids[i:i + len(ids)] == ids for x in on for i in range(len(x) - len(ids) + 1))
        assert count == 1, r.text
    assert sum(len(x.frames) for x in on) == len(s.frames) + 2   # each request repeats one frame


def test_a_question_is_not_separated_from_its_reply_at_a_reference():
    """A reference while a question waits: the chunk ends on the frame of the reply instead,
    with that reference's summary (the next chunk must not hold an answer to an unseen question)."""
    model = load("tiny")
    chat = model.chat
    ep = tea_episode()
    ep.user_turns.append(Turn(45.9, "Is the water hot?", "question"))
    ep.references.append(Turn(47.2, "Yes, it has boiled.", "answer"))
    ep.references.sort(key=lambda r: r.t)
    times = [k / HZ for k in range(N)]
    cfg = SequenceConfig(context_limit=4096, reserve=128, summary_at_every_reference=True)
    samples = build_samples(ep, times, chat, knowledge=False, cfg=cfg)
    assert [s.summary for s in samples] == [SUM1, SUM2, ""]
    second, third = samples[1], samples[2]
    answer = chat.message_ids("assistant", "Yes, it has boiled.")
    tail = answer + summary_turn(chat, SUM2)
    assert second.input_ids[-len(tail):] == tail            # the reply, then the request
    assert second.frames[-1] == ref_frame(times, 47.2) > ref_frame(times, 46.1)
    question = chat.message_ids("user", "Is the water hot?")
    assert contains(second.input_ids, question) and not contains(third.input_ids, question)
    assert not contains(third.input_ids, answer)


def contains(seq: list[int], sub: list[int]) -> bool:
    return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_train_config_turns_it_on_for_new_runs():
    assert TrainConfig(data=["d"], out="o").summary_at_every_reference is True
    base = ["--data", "d", "--out", "o"]
    assert config_from_args(parser().parse_args(base)).summary_at_every_reference is True
    off = config_from_args(parser().parse_args(base + ["--no-summary-at-every-reference"]))
    assert off.summary_at_every_reference is False
