"""Stage-2 training data: the label layout, engine parity, IPS chunking and NFS (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn, is_spoken, spoken_references
from proassist_ros.data.world import make_episode
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.config import DEFAULT_SYSTEM_PROMPT, SUMMARY_QUERY
from proassist_ros.model import load
from proassist_ros.train.nfs import keep_count, nfs_rng, subsample
from proassist_ros.train.sequence import IGNORE, SequenceConfig, build_samples

RECIPE = "1. Boil water\n2. Pour it"
GOAL = "Make tea."


@pytest.fixture(scope="module", params=[1, 5])
def model(request):
    return load("tiny", tokens_per_frame=request.param)


def hand_built(refs: list[Turn] | None = None) -> Episode:
    """7 frames at 0, 0.5, …, 3.0 s; the goal said at 0.2 s, a question at 1.2 s."""
    refs = refs if refs is not None else [
        Turn(0.6, "Boil water.", "instruction"),
        Turn(1.3, "The blue one.", "answer"),          # natural gap 3, pushed after the question
        Turn(2.0, "Summary text.", "progress_summary"),  # not spoken
        Turn(2.6, "Pour.", "instruction")]
    return Episode(EpisodeMeta("hand", hz=2.0), TaskSpec(GOAL, RECIPE, ["Boil water", "Pour it"]),
                   [Turn(0.2, GOAL, "goal"), Turn(1.2, "Which cup?", "question")], refs)


TIMES = [0.5 * k for k in range(7)]


def test_label_layout_hand_built(model):
    chat, per = model.chat, model.config.tokens_per_frame
    img = chat.image_ids(1)
    sil, speak = chat.silence_id, chat.speak_id
    (s,) = build_samples(hand_built(), TIMES, chat, knowledge=True)
    # Expected layout, piece by piece: (ids, labels) with pre-shifted labels.
    pieces: list[tuple[list[int], list[int]]] = []

    def plain(ids):
        pieces.append((ids, [IGNORE] * len(ids)))

    def frame(label=IGNORE):
        pieces.append((img, [IGNORE] * (per - 1) + [label]))

    def reply(text):
        ids = chat.message_ids("assistant", text)
        assert ids[0] == speak
        pieces.append((ids, ids[1:] + [IGNORE]))

    plain(chat.bos_ids() + chat.message_ids("system", DEFAULT_SYSTEM_PROMPT))
    plain(chat.message_ids("user", GOAL))                       # the goal utterance is not repeated
    plain(chat.message_ids("system", "Task knowledge: " + RECIPE))
    frame(sil)            # frame 0: in-turn negative
    frame(speak)          # frame 1 (0.5 s ≤ 0.6 s): decision point of the reply
    reply("Boil water.")
    frame()               # frame 2: last frame before a user turn, no label
    plain(chat.message_ids("user", "Which cup?"))   # enters before frame 3 (1.5 s ≥ 1.2 s)
    frame(speak)          # frame 3: the answer comes one frame after the question
    reply("The blue one.")
    frame(sil)            # frame 4
    frame(speak)          # frame 5 (2.5 s ≤ 2.6 s)
    reply("Pour.")        # the sequence ends with the last reply: frame 6 is not used
    assert s.input_ids == [t for ids, _ in pieces for t in ids]
    assert s.labels == [t for _, lab in pieces for t in lab]
    assert s.frames == [0, 1, 2, 3, 4, 5]
    assert s.input_ids.count(chat.img_token_id) == 6 * per
    pos = [i for i, t in enumerate(s.input_ids) if t == chat.img_token_id][per - 1::per]  # last visual tokens
    assert s.negatives == [[pos[0]], [], [], [pos[4]]]
    assert len(s.input_ids) == len(s.labels) and s.summary == "" and s.chunk == 0

    (bare,) = build_samples(hand_built(), TIMES, chat, knowledge=False)
    knowledge = chat.message_ids("system", "Task knowledge: " + RECIPE)
    k = len(pieces[0][0]) + len(pieces[1][0])
    assert s.input_ids[k:k + len(knowledge)] == knowledge
    assert bare.input_ids == s.input_ids[:k] + s.input_ids[k + len(knowledge):]


def test_two_replies_on_one_frame_are_pushed_apart(model):
    refs = [Turn(0.6, "One.", "instruction"), Turn(0.7, "Two.", "confirmation")]
    (s,) = build_samples(hand_built(refs), TIMES, model.chat, knowledge=False)
    one, two = (model.chat.message_ids("assistant", t) for t in ("One.", "Two."))
    a = next(i for i in range(len(s)) if s.input_ids[i:i + len(one)] == one)
    between = s.input_ids[a + len(one):a + len(one) + model.config.tokens_per_frame]
    assert between == model.chat.image_ids(1)  # "Two." comes one frame later
    assert s.input_ids[a + len(one) + len(between):][:len(two)] == two


def test_no_references_is_an_error(model):
    ep = hand_built([Turn(2.0, "Summary only.", "progress_summary")])
    with pytest.raises(ValueError, match="has no /proassist/reference turns"):
        build_samples(ep, TIMES, model.chat, knowledge=True)


def test_sequence_matches_what_the_engine_feeds():
    """With replies removed, a sample is token for token what AssistantSession feeds."""
    model = load("tiny", tokens_per_frame=1)
    ep = make_episode(0, "train", 0, size=(64, 48), hz=2)
    times = [t for t, _ in ep.frames()][:30]  # 15 s: the goal, a question and three replies
    feats = torch.zeros(len(times), 1, model.llm.config.hidden_size)
    for klg in (True, False):
        (s,) = build_samples(ep, times, model.chat, knowledge=klg)
        # θ tiny: every frame silent (P(silence) ≈ 1/vocab > θ), so the engine feeds only inputs.
        session = AssistantSession(model, EngineConfig(theta=1e-9, step_matcher="none",
                                                       context_limit=100_000))
        session.set_task(ep.task.goal, ep.task.knowledge if klg else "")
        pending, fed = sorted(ep.user_turns, key=lambda u: u.t), []
        for k, t in enumerate(times):
            while pending and pending[0].t <= t:
                u = pending.pop(0)
                session.push_user_utterance(u.text, u.t)
            r = session.push_embedded(feats[k:k + 1], [t])[0]
            assert not r.spoke
            fed += session.last_input_ids
        replies = [model.chat.message_ids("assistant", r.text) for r in spoken_references(ep)
                   if r.t < times[-1]]
        assert len(replies) == 3 and s.notes  # the replies after 15 s are reported, not trained
        ids, i = [], 0
        while i < len(s.input_ids):  # drop every reply span
            hit = next((r for r in replies if s.input_ids[i:i + len(r)] == r), None)
            i += len(hit) if hit else 1
            if not hit:
                ids.append(s.input_ids[i - 1])
        assert replies and ids == fed[:len(ids)]


def test_chunking_of_a_long_episode():
    model = load("tiny", tokens_per_frame=1)
    chat = model.chat
    ep = make_episode(0, "train", 1, size=(64, 48), hz=2, long=True)
    times = [t for t, _ in ep.frames()]
    cfg = SequenceConfig(context_limit=512, reserve=64)
    samples = build_samples(ep, times, chat, knowledge=True, cfg=cfg, seed=1)
    assert len(samples) > 3
    refs = {r.text for r in ep.references if not is_spoken(r.kind)}
    query = chat.message_ids("system", SUMMARY_QUERY)
    fresh = 0
    for s, nxt in zip(samples, samples[1:] + [None]):
        assert len(s) <= cfg.context_limit
        if nxt is None:
            assert s.summary == ""
            continue
        tail = query + chat.image_ids(1) + chat.message_ids("assistant", s.summary)
        assert s.input_ids[-len(tail):] == tail
        assert len(s) - len(tail) <= cfg.context_limit - cfg.reserve  # the IPS trigger point
        assert s.labels[-len(tail) + len(query)] == chat.speak_id  # the summary frame speaks
        fresh += s.summary in refs
        prompt = (f"{DEFAULT_SYSTEM_PROMPT} {s.summary} Task knowledge: {ep.task.knowledge.strip()}")
        head = chat.bos_ids() + chat.message_ids("system", prompt)
        assert nxt.input_ids[:len(head)] == head
        first_turn = next(i for i in range(len(head), len(nxt)) if nxt.input_ids[i] != chat.img_token_id)
        assert 1 <= first_turn - len(head) <= 40  # 5–20 s of context at 2 FPS (or less if it starts sooner)
    assert fresh >= 1
    # Every spoken reference is trained exactly once across the chunks.
    said = [r.text for r in spoken_references(ep)]
    replies = sum(_count(s.input_ids, chat.message_ids("assistant", t)) for s in samples for t in set(said))
    assert replies == len(said)


def _count(seq: list[int], sub: list[int]) -> int:
    return sum(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


@pytest.mark.parametrize("rho", [0.1, 0.5])
def test_nfs_keeps_positives_and_the_right_number_of_negatives(rho):
    model = load("tiny", tokens_per_frame=1)
    ep = make_episode(1, "train", 0, size=(64, 48), hz=2)
    times = [t for t, _ in ep.frames()]
    (s,) = build_samples(ep, times, model.chat, knowledge=True)
    negs = {p for g in s.negatives for p in g}
    assert negs and all(s.labels[p] == model.chat.silence_id for p in negs)
    draws = []
    for epoch in range(3):
        lab = subsample(s.labels, s.negatives, rho, nfs_rng(0, epoch, 7))
        for p, (a, b) in enumerate(zip(s.labels, lab)):
            assert b == (a if p not in negs else b) and b in (a, IGNORE)  # only negatives change
        for g in s.negatives:
            kept = sum(lab[p] != IGNORE for p in g)
            assert kept == (max(int(rho * len(g)), 1) if g else 0)
        draws.append(lab)
        assert lab == subsample(s.labels, s.negatives, rho, nfs_rng(0, epoch, 7))  # deterministic
    assert draws[0] != draws[1] or draws[1] != draws[2]  # re-drawn every epoch
    assert draws[0] != subsample(s.labels, s.negatives, rho, nfs_rng(1, 0, 7))


def test_nfs_extremes():
    assert [keep_count(n, 0.1) for n in (0, 1, 9, 10, 25)] == [0, 1, 1, 1, 2]
    assert keep_count(7, 1.0) == 7 and keep_count(7, -1) == 0
    labels = [5, 1, 1, 1, 2]
    groups = [[1, 2, 3]]
    assert subsample(labels, groups, 1.0, np.random.default_rng(0)) == labels
    assert subsample(labels, groups, -1.0, np.random.default_rng(0)) == [5, IGNORE, IGNORE, IGNORE, 2]
