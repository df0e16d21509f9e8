"""Train and infer alike: what a training sample holds is, token for token and frame for frame,
what ``AssistantSession`` feeds the model when it says the sample's replies — replies, an IPS
summary request, the summary, and the stream resuming after it — and a model trained here
carries the setting that makes the engine run it that way (``append_eot_after_reply``).

The engine is teacher-forced: its greedy step (``model.streaming._argmax``) returns the training
sample's targets in order — at each frame's last visual token the decision label (speak /
silence; none → silence), then each reply or summary token — so the engine says exactly the
reference replies and the reference summary, and everything it *feeds* (frames, user turns,
prompts, the tokens it generated, any end-of-turn token) comes from its own code. Every call of
``forward_chunk`` is recorded; a reset of the cache (IPS) starts the next recorded stream.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers.teacher_forcing import record_fed

from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.engine import AssistantSession, EngineConfig
from proassist_ros.engine.config import DEFAULT_SYSTEM_PROMPT, SUMMARY_QUERY, model_settings
from proassist_ros.engine.context import system_content
from proassist_ros.engine.knowledge import knowledge_message
from proassist_ros.eval.evaluate import EvalSettings
from proassist_ros.model import load
from proassist_ros.model.loader import default_settings
from proassist_ros.train.layout import TRAINED_LAYOUT
from proassist_ros.train.sequence import Sample, SequenceConfig, build_samples

GOAL = "I want to make a cup of tea."
RECIPE = "1. Fill the kettle\n2. Switch it on\n3. Put a tea bag in the cup\n4. Pour the water"
SUM1 = "The time elapsed since the start of the task is 12.2 seconds. The kettle is filled and on."
SUM2 = "The time elapsed since the start of the task is 24.1 seconds. The tea bag is in the blue cup."
TIMES = [0.5 * k for k in range(80)]  # 40 s at 2 FPS
RESERVE = 16                          # the engine's reserve: its trigger is set per chunk (below)


def episode() -> Episode:
    """Goal, two questions, nine replies and two progress-summary references."""
    users = [Turn(0.2, GOAL, "goal"), Turn(4.1, "Where is the kettle?", "question"),
             Turn(18.0, "Which cup should I use?", "question")]
    refs = [Turn(1.1, "Fill the kettle with water.", "instruction"),
            Turn(4.2, "It is on the left counter.", "answer"),   # one frame after the question
            Turn(7.3, "Switch the kettle on.", "instruction"),
            Turn(10.0, "Good, the kettle is on.", "confirmation"),
            Turn(12.2, SUM1, "progress_summary"),
            Turn(14.6, "Put a tea bag in the cup.", "instruction"),
            Turn(18.3, "The blue cup.", "answer"),
            Turn(21.4, "Pour the hot water into the cup.", "instruction"),
            Turn(24.1, SUM2, "progress_summary"),
            Turn(27.5, "Wait three minutes, then take the tea bag out.", "instruction"),
            Turn(33.0, "Well done, your tea is ready.", "confirmation")]
    return Episode(EpisodeMeta("alike", hz=2.0), TaskSpec(GOAL, RECIPE, []), users, refs)


# (chat format, I, knowledge, training context limit): limits at which the episode is cut into
# three chunks, each of the first two ending at one of the progress-summary references.
CASES = [("chatml", 1, True, 200), ("chatml", 1, False, 170),
         ("llama3", 5, True, 360), ("llama3", 5, False, 320)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-I{c[1]}-{'klg' if c[2] else 'noklg'}")
def case(request):
    fmt, per, knowledge, limit = request.param
    model = load("tiny", chat_format=fmt, tokens_per_frame=per)
    # context_s (0, ∞): a later chunk starts at the frame after the previous body, where the
    # engine goes on (the random 5–20 s trim is data augmentation the engine never does).
    cfg = SequenceConfig(context_limit=limit, reserve=limit // 8, context_s=(1000.0, 1000.0))
    samples = build_samples(episode(), TIMES, model.chat, knowledge=knowledge, cfg=cfg)
    return model, knowledge, samples


def without_reply_eots(ids: list[int], labels: list[int], chat) -> list[int]:
    """A sample's tokens without the end-of-turn token that closes each reply and summary (the
    released inference's stream, spec P1): the token after a text position labelled eot."""
    return [t for p, t in enumerate(ids)
            if not (p > 0 and labels[p - 1] == chat.silence_id and ids[p - 1] != chat.img_token_id)]


def body_length(stream: list[int], chat) -> int:
    """Where a chunk's summary request starts."""
    query = chat.message_ids("system", SUMMARY_QUERY)
    return max(p for p in range(len(stream)) if stream[p:p + len(query)] == query)


def run_engine(model, knowledge: bool, samples: list[Sample], expected: list[list[int]],
               append_eot: bool, monkeypatch) -> tuple[list[list[int]], list[list[int]], list]:
    """Teacher-forced engine over the episode; returns the fed token streams (one per cache
    reset), the frame rows fed in each, and the FrameResults."""
    chat, per = model.chat, model.config.tokens_per_frame
    calls = record_fed(model, samples, monkeypatch)

    # The engine summarises at L − reserve; training cuts a chunk at a reference summary or a
    # reply before that (docs/training.md, "Where a chunk ends"). The trigger is set per chunk to
    # where the expected stream asks for the summary, so the layouts can be compared there.
    def limits(k: int) -> dict:
        if k >= len(expected) - 1:
            return {"context_limit": 100_000, "reserve": RESERVE}
        return {"context_limit": body_length(expected[k], chat) + RESERVE, "reserve": RESERVE}

    session = AssistantSession(model, EngineConfig(
        theta=0.0, summary_theta=0.0, step_matcher="none", append_eot_after_reply=append_eot, **limits(0)))
    session.set_task(GOAL, RECIPE if knowledge else "")
    feats = torch.stack([torch.full((per, model.llm.config.hidden_size), (k + 1) / 100) for k in range(len(TIMES))])
    pending, results, chunk = sorted(episode().user_turns, key=lambda u: u.t), [], 0
    for k, t in enumerate(TIMES):
        while pending and pending[0].t <= t:
            u = pending.pop(0)
            session.push_user_utterance(u.text, u.t)
        r = session.push_embedded(feats[k:k + 1], [t])[0]
        results.append(r)
        if r.context_event:
            assert r.context_event == "ips"
            chunk += 1
            session.update_config(**limits(chunk))
    streams: list[list[int]] = []
    rows: list[list[int]] = []
    for fresh, ids, r in calls:
        if fresh:
            streams.append([])
            rows.append([])
        streams[-1] += ids
        assert all(len(set(r[i:i + per])) == 1 for i in range(0, len(r), per))  # one frame's I tokens
        rows[-1] += r[::per]
    return streams, rows, results


def test_two_summary_references_give_two_summary_turns_laid_out_as_ips(case):
    """The training side of the comparison below: three chunks, the first two ending with the
    engine's IPS request (system query + the body's last frame again + the summary) and the next
    starting with the engine's rebuilt system prompt."""
    model, knowledge, samples = case
    chat = model.chat
    assert [s.summary for s in samples] == [SUM1, SUM2, ""]
    klg = knowledge_message(RECIPE) if knowledge else ""
    cfg = EngineConfig()
    for s, nxt in zip(samples, samples[1:]):
        tail = (chat.message_ids("system", SUMMARY_QUERY) + chat.image_ids(1)
                + chat.message_ids("assistant", s.summary))
        assert s.input_ids[-len(tail):] == tail
        assert s.frames[-1] == s.frames[-2]            # the request repeats the last frame
        assert nxt.frames[0] == s.frames[-1] + 1       # the next chunk goes on with the next one
        head = chat.bos_ids() + chat.message_ids("system", system_content(cfg, s.summary, klg))
        assert nxt.input_ids[:len(head)] == head
    head = chat.bos_ids() + chat.message_ids("system", DEFAULT_SYSTEM_PROMPT)
    assert samples[0].input_ids[:len(head)] == head


def test_engine_feeds_the_training_sample_when_it_speaks_summarises_and_resumes(case, monkeypatch):
    model, knowledge, samples = case
    expected = [s.input_ids for s in samples]
    streams, rows, results = run_engine(model, knowledge, samples, expected, True, monkeypatch)
    for k, (s, stream, fed_rows) in enumerate(zip(samples, streams, rows)):
        last = k == len(samples) - 1   # the engine goes on after the last reply; training ends there
        fed = stream[:len(s.input_ids)] if last else stream
        assert fed == s.input_ids, f"chunk {k}: the engine fed another layout than training"
        assert (fed_rows[:len(s.frames)] if last else fed_rows) == s.frames, f"chunk {k}: frames differ"
    assert len(streams) == 3
    spoken = [r.text for r in results if r.spoke]
    assert len(spoken) == 9 and spoken[0] == "Fill the kettle with water."
    assert [r.summary for r in results if r.context_event] == [SUM1, SUM2]


def test_without_the_flag_only_the_reply_endings_differ(case, monkeypatch):
    """The released inference (flag off, spec P1) feeds the same stream minus the end-of-turn
    token after each reply and summary — the mismatch the flag removes (and that the test above
    would catch)."""
    model, knowledge, samples = case
    chat = model.chat
    expected = [without_reply_eots(s.input_ids, s.labels, chat) for s in samples]
    streams, _, _ = run_engine(model, knowledge, samples, expected, False, monkeypatch)
    assert len(streams) == 3
    for k, (s, e) in enumerate(zip(samples, expected)):
        fed = streams[k][:len(e)] if k == len(samples) - 1 else streams[k]
        assert fed == e
        assert fed != s.input_ids[:len(fed)]
        said = sum(label == chat.speak_id for t, label in zip(s.input_ids, s.labels) if t == chat.img_token_id)
        assert len(s.input_ids) - len(e) == said  # one end-of-turn token per reply / summary


# ---- a checkpoint says how it was trained ------------------------------------------------------
def test_model_settings_follow_the_checkpoint():
    assert TRAINED_LAYOUT == {"append_eot_after_reply": True}
    shipped = default_settings("embedded")
    assert shipped["append_eot_after_reply"] is True            # trained with train/layout.py
    assert "append_eot_after_reply" not in default_settings("tiny")
    on = EngineConfig(**model_settings(-1, 0, shipped, strategy="ips"))
    assert on.append_eot_after_reply and on.theta == shipped["theta"]
    assert not EngineConfig(**model_settings(-1, 0, {}, strategy="ips")).append_eot_after_reply  # released: P1
    assert not model_settings(-1, 0, shipped, strategy="ips", append_eot=False)["append_eot_after_reply"]
    assert model_settings(0.2, None, shipped) == {}                # run-time θ changes leave it alone
    assert EvalSettings().engine_config(0.3, shipped).append_eot_after_reply
    assert not EvalSettings(append_eot=False).engine_config(0.3, shipped).append_eot_after_reply
    assert not EvalSettings().engine_config(0.3, {}).append_eot_after_reply


def test_eval_cli_flag_is_hidden_and_maps_to_the_setting():
    from proassist_ros.eval.cli import build_parser

    parser = build_parser()
    assert "--append-eot" not in parser.format_help()
    for word, value in (("auto", "auto"), ("on", "on"), ("off", "off")):
        assert parser.parse_args(["x", "--out", "o", "--append-eot", word]).append_eot == value
    assert parser.parse_args(["x", "--out", "o"]).append_eot == "auto"


def test_trained_checkpoint_and_shipped_package_record_the_layout(tmp_path):
    """`proassist train` writes the layout into model/ (config defaults) and adapter/; train.ship
    keeps the adapter's word, and adds it to an adapter exported before it was recorded."""
    from proassist_ros.data.dataset import write_episode
    from proassist_ros.data.world import make_episode
    from proassist_ros.model.embedded import WEIGHTS_DIR
    from proassist_ros.train.config import TrainConfig
    from proassist_ros.train.presets import preset
    from proassist_ros.train.ship import ship
    from proassist_ros.train.trainer import train

    write_episode(make_episode(0, "train", 0, size=(64, 48), hz=2), tmp_path / "bags" / "b0")
    out = tmp_path / "run"
    train(TrainConfig(**{**preset("smoke"), "data": [str(tmp_path / "bags")], "out": str(out),
                         "steps": 1, "warmup": 0, "save_every": 0}), progress=False)
    assert default_settings(out / "model")["append_eot_after_reply"] is True
    assert load(out / "model").config.defaults["append_eot_after_reply"] is True
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["append_eot_after_reply"] is True
    assert EngineConfig(**model_settings(-1, 0, default_settings(out / "model"),
                                         strategy="ips")).append_eot_after_reply

    old = tmp_path / "old_adapter"   # exported before the layout was recorded
    shutil.copytree(out / "adapter", old)
    (old / "adapter_config.json").write_text(json.dumps(
        {k: v for k, v in adapter.items() if k != "append_eot_after_reply"}))
    shipped = json.loads((ship(WEIGHTS_DIR, old, 0.3, tmp_path / "pkg") / "adapter_config.json").read_text())
    assert shipped["append_eot_after_reply"] is True and shipped["theta"] == 0.3
    (old / "adapter_config.json").write_text(json.dumps({**adapter, "append_eot_after_reply": False}))
    shipped = json.loads((ship(WEIGHTS_DIR, old, 0.3, tmp_path / "pkg2") / "adapter_config.json").read_text())
    assert shipped["append_eot_after_reply"] is False   # an adapter that says otherwise keeps its word


# ---- the metric puts a reference where training labels it -----------------------------------------
def test_metric_places_a_reference_on_the_frame_training_labels():
    """Training labels "speak" at the last frame at or before a reference's time (train/layout.py;
    the released code alike, spec §1.6 / §2.1); the metric puts the reference on that frame, so a
    model that speaks exactly where it was trained to is on time (time_diff 0)."""
    import bisect

    import numpy as np

    from proassist_ros.eval.metrics import frame_index, pairwise_match, reference_frame_index
    from proassist_ros.train.layout import place_turns

    fps, times = 2.0, [k / 2 for k in range(120)]
    for t in np.round(np.arange(0.0, 59.0, 0.01), 2):
        decision = bisect.bisect_right(times, t) - 1          # training's speak frame
        assert reference_frame_index(float(t), fps) == frame_index(times[decision], fps), t
    ep = Episode(EpisodeMeta("grid", hz=2.0), None, [],
                 [Turn(t, f"Step {k}.", "instruction") for k, t in enumerate((3.3, 10.4, 20.49, 31.0))])
    gaps = [p.gap for p in place_turns(ep, times, knowledge=False).turns]
    preds = [(times[g - 1], f"Step {k}.") for k, g in enumerate(gaps)]  # said at the trained frame
    emb = {f"Step {k}.": np.eye(4)[k] for k in range(4)}
    r = pairwise_match(preds, [(r.t, r.text) for r in ep.references], embed=lambda ts: np.stack([emb[t] for t in ts]))
    assert r.matched == 4 and r.time_diff == 0.0
    nearest = pairwise_match(preds, [(r.t, r.text) for r in ep.references], reference_grid="nearest",
                             embed=lambda ts: np.stack([emb[t] for t in ts]))
    assert nearest.matched == 4 and nearest.time_diff == pytest.approx(0.375)  # 3.3, 10.4, 20.49 s round up


@pytest.mark.parametrize("pred_t, at_or_before, nearest", [(6.0, True, False), (12.0, True, True), (12.5, False, True)])
def test_window_edges_follow_the_reference_frame(pred_t, at_or_before, nearest):
    """assembly101 window (−2, 4) s = (−4, 8) frames; a reference at 10.4 s is on frame 20 (10.0 s),
    not 21 (10.5 s): a prediction 4.4 s early now matches, one 2.1 s late no longer does."""
    import numpy as np

    from proassist_ros.eval.metrics import pairwise_match, window_for

    def emb(texts):
        return np.ones((len(texts), 1))

    def hit(grid):
        r = pairwise_match([(pred_t, "Pour.")], [(10.4, "Pour.")], window_s=window_for("assembly101"), embed=emb,
                           reference_grid=grid)
        return r.matched == 1
    assert (hit("at_or_before"), hit("nearest")) == (at_or_before, nearest)
    with pytest.raises(ValueError, match="reference_grid"):
        pairwise_match([(1.0, "x")], [(1.0, "x")], embed=emb, reference_grid="round")
