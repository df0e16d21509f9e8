"""Content-exact F1 (eval/content.py): a matched pair counts only if the prediction says what the
reference says — the same step, objects, location, count — judged from the task world's
vocabulary, not from sentence embeddings; bags not from the world say "not available"."""

from __future__ import annotations

import re

import numpy as np
import pytest

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn, is_spoken, spoken_references
from proassist_ros.data.schema import T0_NS
from proassist_ros.data.world import TASK_TYPES, make_episode
from proassist_ros.data.world.catalog import lower_first
from proassist_ros.data.world.dialogue import CONFIRM, FIRST, FIXED, NEXT, ROUND_DONE, ROUND_START
from proassist_ros.data.world.tasks import TASKS
from proassist_ros.eval import evaluate, report
from proassist_ros.eval import metrics as paper_metric
from proassist_ros.eval.content import NOT_AVAILABLE, WorldVocabulary, vocabulary_for
from proassist_ros.eval.live import score_outputs
from proassist_ros.eval.metrics import aggregate, macro_average
from proassist_ros.eval.offline import FrameLog, VideoRun
from proassist_ros.eval.outputs import write_run_bag
from proassist_ros.eval.scoring import score_video

TEA = WorldVocabulary.for_task("make_tea")
WHERE_LEFT = "It's at the front on the left, next to the cup."
WHERE_RIGHT = "It's at the front on the right, next to the cup."
_WORDS: dict[str, int] = {}


def bow_embed(texts: list[str]) -> np.ndarray:
    """Unit bag-of-words vectors: templated sentences differing in one word score ~0.9, as MiniLM
    scores them (0.97 for left vs right), without loading a model."""
    out = np.zeros((len(texts), 512))
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z']+", t.lower()):
            out[i, _WORDS.setdefault(w, len(_WORDS))] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture(autouse=True)
def fake_embedder(monkeypatch):
    monkeypatch.setattr(paper_metric, "minilm_embed", bow_embed)


# ---- the content key ---------------------------------------------------------------------------
def test_left_and_right_are_not_the_same_place():
    assert TEA.key(WHERE_LEFT).location == {"front", "left"}
    assert TEA.key(WHERE_LEFT).objects == {"cup"}
    assert not TEA.exact(WHERE_RIGHT, WHERE_LEFT)
    assert not TEA.exact("It's at the back on the left, next to the cup.", WHERE_LEFT)
    assert not TEA.exact("It's at the front on the left, next to the saucer.", WHERE_LEFT)
    assert TEA.exact("It is at the front, on the left, next to the cup!", WHERE_LEFT)
    # the embedding filter cannot tell them apart
    assert (bow_embed([WHERE_LEFT]) @ bow_embed([WHERE_RIGHT]).T)[0, 0] > 0.85


def test_a_wrong_step_is_not_exact():
    ref = "Next, fill the kettle with water."
    assert TEA.key(ref).steps == {(1, "todo")}
    assert not TEA.exact("Next, switch the kettle on.", ref)
    assert not TEA.exact("Next, put a tea bag into the cup.", ref)
    assert not TEA.exact("Next, fill the cup.", ref)          # not the step's words: objects only
    assert TEA.exact("Pour water from the jug into the kettle.", ref)   # the step's paraphrase (alt)


def test_done_todo_and_doing_are_different_content():
    # "put a tea bag into the cup" is both the imperative and the past: "you" decides
    assert TEA.key("Nice, you put a tea bag into the cup.").steps == {(4, "done")}
    assert TEA.key("Yes, you already put a tea bag into the cup.").steps == {(4, "done")}
    assert TEA.key("Not yet. You still need to put a tea bag into the cup.").steps == {(4, "todo")}
    assert TEA.key("Next, put a tea bag into the cup.").steps == {(4, "todo")}
    assert not TEA.exact("Next, put a tea bag into the cup.", "Nice, you put a tea bag into the cup.")
    assert TEA.key("Keep pouring water from the jug into the kettle.").steps == {(1, "doing")}


def test_a_wrong_count_is_not_exact():
    ref = "About two more minutes; three steps left."
    assert TEA.key(ref).counts == {("minute", 2), ("step", 3)}
    assert not TEA.exact("About two more minutes; four steps left.", ref)
    assert not TEA.exact("Less than a minute; three steps left.", ref)
    assert TEA.exact("About 2 more minutes; 3 steps left.", ref)
    rounds = [t.format(n="two") for t in ROUND_DONE]
    assert all(TEA.exact(a, b) for a in rounds for b in rounds)      # "two to go" = "only two left"
    assert not TEA.exact(ROUND_DONE[0].format(n="three"), rounds[1])


def test_a_wrong_object_in_a_correction_is_not_exact():
    ref = "Oops, that's the biscuit, not the tea bag. Please take the biscuit out of the cup."
    assert TEA.key(ref).objects == {"biscuit", "tea bag", "cup"}
    assert TEA.exact("Careful, that's the biscuit. Please take the biscuit out of the cup and use the tea bag "
                     "instead.", ref)
    assert not TEA.exact("Oops, that's the saucer, not the tea bag. Please take the saucer out of the cup.", ref)


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_template_openers_with_the_same_content_are_exact(task_type):
    task = TASKS[task_type]
    vocab = WorldVocabulary.for_task(task_type)
    for i, step in enumerate(task.steps):
        phrases = [lower_first(step.text), lower_first(step.alt)]
        todo = [t.format(s=p) for t in (*FIRST, *NEXT, *ROUND_START, *FIXED) for p in phrases]
        done = [t.format(d=step.done) for t in CONFIRM]
        sid = vocab.key(todo[0]).steps
        assert len(sid) == 1 and next(iter(sid))[1] == "todo", (task_type, i, todo[0])
        assert all(vocab.exact(a, todo[0]) and vocab.exact(todo[0], a) for a in todo), (task_type, i)
        assert all(vocab.exact(a, done[0]) for a in done), (task_type, i)
        assert not vocab.exact(todo[0], done[0]), (task_type, i, todo[0], done[0])
        others = [lower_first(s.text) for j, s in enumerate(task.steps) if s.text != step.text]
        assert not any(vocab.exact(NEXT[0].format(s=o), todo[0]) for o in others), (task_type, i)


def test_every_spoken_world_reference_names_something():
    """No reference of the generator falls back to text equality: each has a key of its own."""
    seen = 0
    for index in range(12):
        ep = make_episode(11, "test" if index % 2 else "train", index)
        vocab, why = vocabulary_for(ep)
        assert vocab is not None, why
        for ref in spoken_references(ep):
            key = vocab.key(ref.text)
            assert key.named(), ref.text
            assert vocab.exact(ref.text, ref.text)
            seen += 1
    assert seen > 100


def test_a_sentence_boundary_is_not_crossed():
    # "Right. Now …" is the FIXED opener, not "right now" (you're doing it right now)
    assert TEA.key("Right. Now switch the kettle on.").acts == frozenset()
    assert TEA.key("You're doing it right now.").acts == {"now"}
    assert not TEA.exact("Next, switch the kettle on.", "You're doing it right now.")


# ---- score_video ----------------------------------------------------------------------------
REFS = [Turn(5.0, WHERE_LEFT, "answer"), Turn(12.0, "Next, switch the kettle on.", "instruction"),
        Turn(20.0, "Nice, you switched the kettle on.", "confirmation"),
        Turn(30.0, "The time elapsed since the start of the task is 30.0 seconds.", "progress_summary")]
SAID = [(5.0, WHERE_RIGHT), (12.0, "Good. Now turn on the kettle."), (20.5, "Nice, you opened the tea box.")]


def test_score_video_paper_f1_matches_a_wrong_location_but_content_f1_does_not():
    r = score_video(SAID, REFS, window_s=(-2.5, 2.5), vocabulary=TEA)
    assert (r.matched, r.missed, r.redundant) == (3, 0, 0)       # the paper's filter takes all three
    assert r.f1 == pytest.approx(1.0)
    exact = {p.ref_kind: p.content_exact for p in r.pairs}
    assert exact == {"answer": False, "instruction": True, "confirmation": False}
    assert r.content_matched == 1
    assert r.precision_content == pytest.approx(1 / 3) and r.recall_content == pytest.approx(1 / 3)
    assert r.f1_content == pytest.approx(1 / 3)
    assert r.content_right_share == pytest.approx(1 / 3)
    d = r.to_dict(with_pairs=True)
    assert d["f1_content"] == pytest.approx(1 / 3) and d["content_available"] is True
    assert "content_note" not in d
    assert d["per_kind"]["answer"] == {"references": 1, "matched": 1, "recall": 1.0, "content_matched": 0,
                                       "recall_content": 0.0, "content_right_share": 0.0}
    assert d["per_kind"]["instruction"]["content_right_share"] == 1.0
    wrong = next(p for p in d["pairs"] if p["ref_kind"] == "answer")
    assert wrong["pred_content"] == "objects cup; at front right"
    assert wrong["ref_content"] == "objects cup; at front left"


def test_content_f1_keeps_the_paper_denominators():
    """A missed reference and a redundant prediction lower both F1s alike; only TP differs."""
    said = [(5.0, WHERE_LEFT), (40.0, "Next, close the tea box.")]
    r = score_video(said, REFS, window_s=(-2.5, 2.5), vocabulary=TEA)
    assert (r.matched, r.missed, r.redundant) == (1, 2, 1)
    assert r.content_matched == 1
    assert r.f1_content == pytest.approx(r.f1) == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert r.per_kind()["instruction"] == {"references": 1, "matched": 0, "recall": 0.0, "content_matched": 0,
                                           "recall_content": 0.0, "content_right_share": None}


def test_without_a_vocabulary_content_is_not_available_and_pools_so():
    plain = score_video(SAID, REFS, window_s=(-2.5, 2.5))
    assert plain.f1 == pytest.approx(1.0)
    assert plain.f1_content is None and plain.content_right_share is None
    assert all(p.content_exact is None for p in plain.pairs)
    d = plain.to_dict()
    assert d["content_note"] == NOT_AVAILABLE and d["f1_content"] is None and d["content_matched"] is None
    world = score_video(SAID, REFS, window_s=(-2.5, 2.5), vocabulary=TEA)
    both = aggregate([world, plain])
    assert both.f1_content is None and "1 of 2 videos" in both.content_note
    assert aggregate([world, world]).f1_content == pytest.approx(1 / 3)
    macro = macro_average({"a": world, "b": plain})
    assert macro["f1"] == pytest.approx(1.0) and macro["f1_content"] is None
    assert macro_average({"a": world, "b": world})["f1_content"] == pytest.approx(1 / 3)


# ---- bags: world vs not ---------------------------------------------------------------------
def _run(ep: Episode, said: list[tuple[float, str]]) -> VideoRun:
    at = {round(t * 2) / 2: text for t, text in said}
    n = int(ep.meta.duration_s * 2)
    frames = [FrameLog(k / 2, 0.9 if k / 2 in at else 0.1, k / 2 in at, at.get(k / 2, "")) for k in range(1, n + 1)]
    return VideoRun(ep.meta.video_id, ep.meta.task_type, ep.meta.split, ep.meta.duration_s, 0.3, frames=frames,
                    references=[(r.t, r.text, r.kind) for r in spoken_references(ep)])


def _own_bag_episode() -> Episode:
    """A user's own recording: a task and references, but no world facts."""
    def frames():
        for k in range(60):
            yield k / 2, np.full((24, 32, 3), k * 4, np.uint8)

    return Episode(EpisodeMeta("mine", task_type="make_tea", duration_s=30.0, hz=2.0),
                   TaskSpec("I want tea.", "[Make tea]\n1. Fill the kettle with water.",
                            ["Fill the kettle with water."], "make_tea"),
                   references=list(REFS), frames=frames)


def test_a_bag_not_from_the_world_says_not_available(tmp_path):
    ep = _own_bag_episode()
    bag = write_episode(ep, tmp_path / "mine")
    back, _ = read_episode_base(bag)
    vocab, why = vocabulary_for(back)
    assert vocab is None and why.startswith(NOT_AVAILABLE) and "not a task-world bag" in why
    # a world generator name with a recipe of its own is not the world either
    back.meta.generator = "proassist_ros.world/1"
    assert vocabulary_for(back)[0] is None and "recipe" in vocabulary_for(back)[1]

    outputs = write_run_bag(_run(ep, SAID), tmp_path / "outputs", T0_NS)    # the live path (replay)
    live = score_outputs(bag, outputs, window_s=(-2.5, 2.5))
    assert live["overall"]["f1"] == pytest.approx(1.0)
    assert live["overall"]["f1_content"] is None and live["overall"]["content_right_share"] is None
    assert live["overall"]["content_note"] == NOT_AVAILABLE and "not a task-world bag" in live["content_note"]


def test_a_world_bag_is_judged_by_its_facts_on_both_paths(tmp_path):
    ep = make_episode(5, "test", 1, size=(64, 48), hz=2.0)
    refs = spoken_references(ep)
    bag = write_episode(ep, tmp_path / "world")
    back, _ = read_episode_base(bag)
    vocab, why = vocabulary_for(back)
    assert vocab is not None, why
    # said: every reference, the first one with its step swapped for another of the recipe
    first = refs[0].text
    steps = TASKS[ep.meta.task_type].steps
    phrase, step = next((lower_first(p), s) for s in steps for p in (s.text, s.alt) if lower_first(p) in first)
    other = next(s for s in steps if s.text != step.text)
    said = [(r.t, r.text) for r in refs]
    said[0] = (refs[0].t, first.replace(phrase, lower_first(other.text)))
    run = _run(ep, said)
    outputs = write_run_bag(run, tmp_path / "outputs", T0_NS)

    live = score_outputs(bag, outputs, window_s=(-2.5, 2.5))
    settings = evaluate.EvalSettings()
    offline = evaluate._theta_summary([run], settings, {run.video_id: vocabulary_for(back)})
    for o in (live["overall"], offline["overall"]):
        n = len(refs)
        assert o["matched"] == n and o["f1"] == pytest.approx(1.0), o["matched"]
        assert o["content_matched"] == n - 1
        assert o["f1_content"] == pytest.approx((n - 1) / n)
        assert o["content_right_share"] == pytest.approx((n - 1) / n)
        assert o["per_kind"]["instruction"]["content_matched"] == o["per_kind"]["instruction"]["matched"] - 1
    assert live["overall"] == offline["overall"]
    assert all(is_spoken(r.kind) for r in refs)


def test_the_report_and_summary_show_the_column(tmp_path, capsys):
    ep = make_episode(5, "test", 1, size=(64, 48), hz=2.0)
    run = _run(ep, [(r.t, r.text) for r in spoken_references(ep)])
    settings = evaluate.EvalSettings(model="hand-built")
    at = evaluate._theta_summary([run], settings, {run.video_id: vocabulary_for(ep)})
    metrics = {"settings": {"model": "hand-built"}, "thetas": {"0.3": at}, "theta_selected": 0.3,
               "videos": [{"video_id": run.video_id, "task_type": run.task_type, "references": len(run.references),
                           "scored": True, "task": True}],
               "metrics_skipped": [], "best": at["overall"], "baselines": {}}
    html = report.write_report(tmp_path, metrics, {0.3: [run]}).read_text()
    assert "F1 content-exact" in html and "Per kind of reference" in html and "right in content" in html
    from proassist_ros.eval.cli import _print_summary

    _print_summary(metrics, tmp_path)
    out = capsys.readouterr().out
    assert "F1 content-exact" in out and '"f1_content": 1.0' in out and '"content_right_share": 1.0' in out
