"""The linear probe (train/probe.py): it finds a planted signal, stays at chance on noise, splits by
video, computes the features the LLM gets, and runs end to end as `proassist train probe`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from proassist_ros.train import probe as P

REPO = Path(__file__).resolve().parents[1]


def _facts(videos: int = 8, frames: int = 60, seed: int = 0) -> P.Facts:
    """Two task types; random step labels, completions (~15 %) and two objects' states per frame."""
    rng = np.random.default_rng(seed)
    f = P.Facts()
    for v in range(videos):
        task = "make_tea" if v % 2 else "take_medicine"
        for k in range(frames):
            f.videos.append(f"v{v}")
            f.tasks.append(task)
            f.t.append(k * 0.5)
            f.step.append(f"{task}:{rng.integers(4)}")
            f.completed.append(bool(rng.random() < 0.15))
            f.states.append({f"{task}/cup": f"fill={rng.choice(['empty', 'water', 'tea'])}",
                             f"{task}/box": f"open={bool(rng.integers(2))}"})
            f.away.append(False)
    return f


def _planted(f: P.Facts, dims: int = 48, seed: int = 1) -> np.ndarray:
    """Noise, plus one direction per label value: the labels are linearly decodable."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(f), dims))
    x[:, 0] += 4.0 * np.asarray(f.completed)
    steps = sorted(set(f.step))
    for i in range(len(f)):
        x[i, 1 + steps.index(f.step[i])] += 4.0  # 8 classes: 4 steps of 2 task types
        cup, box = f.states[i].values()
        x[i, 9 + ["fill=empty", "fill=water", "fill=tea"].index(cup)] += 4.0
        x[i, 12] += 4.0 * (box == "open=True")
    return x


def test_a_planted_linear_signal_is_found():
    f = _facts()
    r = P.run_probes(_planted(f), f, P.video_folds(f.videos, f.tasks, 2), l2=1e-3)
    assert r["completion"]["auc"] > 0.95
    assert r["step"]["accuracy"] > 0.9 and r["step"]["chance_accuracy"] < 0.4
    assert r["states"]["accuracy"] > 0.9 and r["states"]["objects"] == 4  # cup and box of 2 task types
    assert r["completion_pair"]["auc"] > 0.9


def test_features_independent_of_the_labels_stay_near_chance():
    f = _facts()
    x = np.random.default_rng(2).normal(size=(len(f), 200))  # many dims: easy to overfit the train part
    folds = P.video_folds(f.videos, f.tasks, 2)
    r = P.run_probes(x, f, folds, l2=1e-3)
    assert 0.35 < r["completion"]["auc"] < 0.65
    assert 0.35 < r["completion_pair"]["auc"] < 0.65
    assert r["step"]["accuracy"] < r["step"]["chance_accuracy"] + 0.15
    assert r["states"]["balanced_accuracy"] < r["states"]["chance_balanced_accuracy"] + 0.15
    # the same probe scored on its own train frames would look perfect: held-out scoring is what keeps it honest
    train = np.flatnonzero(np.array([folds[v] for v in f.videos]) == 0)
    assert P.detect(x, f.completed, train, train)["auc"] > 0.9


def test_folds_split_by_video_and_keep_each_task_type_on_both_sides():
    f = _facts(videos=6)
    folds = P.video_folds(f.videos, f.tasks, 2)
    assert set(folds) == set(f.videos)
    for task in set(f.tasks):
        assert {folds[v] for v, t in zip(f.videos, f.tasks) if t == task} == {0, 1}
    # three videos of three task types: plain rank, so no fold is empty
    assert sorted(P.video_folds(["a", "b", "c"], ["x", "y", "z"], 2).values()) == [0, 0, 1]
    with pytest.raises(ValueError, match="folds"):
        P.video_folds(["a"], ["x"], 2)


def test_metrics_against_hand_computed_values():
    assert P.roc_auc([True, False, True, False], [0.9, 0.1, 0.4, 0.4]) == pytest.approx(0.875)
    assert P.average_precision([True, False, True], [0.9, 0.8, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    assert P.balanced_accuracy(["a", "a", "a", "b"], ["a", "a", "a", "a"]) == pytest.approx(0.5)


def test_labels_from_the_world_facts():
    steps = [{"step": 2, "t_start": 1.0, "t_end": 4.0}, {"step": 0, "t_start": 6.0, "t_end": 9.0}]
    assert [P.step_label(steps, "make_tea", t) for t in (0.5, 1.0, 3.9, 4.0, 6.5)] == \
        ["none", "make_tea:2", "make_tea:2", "none", "make_tea:0"]
    assert [P.completed(steps, t, 1.0) for t in (3.9, 4.0, 4.5, 4.99, 5.0)] == [False, True, True, True, False]


def test_features_are_what_the_llm_gets():
    import torch

    from proassist_ros.model import load
    from proassist_ros.model.vision import preprocess

    model = load("tiny")
    tower = P._from_model(model, "tiny", "tiny")
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    out = P.encode(tower, preprocess(frames, tower.image_size))
    with torch.no_grad():
        assert np.allclose(out["projected"], model.embed_frames(frames).flatten(1).numpy(), atol=1e-5)
        assert np.allclose(out["tower"], model.encode_frames(frames).flatten(1).numpy(), atol=1e-5)
    random = P.load_towers(["random", "tiny"])[0]  # shaped as the tiny tower, other weights
    assert random.image_size == tower.image_size and random.vision.config.hidden_size == 32
    assert not np.allclose(P.encode(random, preprocess(frames, 32))["tower"], out["tower"])


def test_a_sample_bag_gives_the_worlds_facts():
    v = next(P.bag_videos([REPO / "samples" / "test_0004_take_medicine"], fps=1.0))
    assert v.world is not None and v.task == "take_medicine" and len(v.frames) == len(v.t) > 60
    f = P.Facts()
    f.add(v, 1.0)
    assert sum(f.completed) >= len(v.steps) - 1 and set(f.step) > {"none"}
    assert all(k.startswith("take_medicine/") for k in f.states[0])


def test_proassist_train_probe_end_to_end_on_the_tiny_model(tmp_path, capsys):
    from proassist_ros.cli import main

    rc = main(["train", "probe", "random", "tiny", "captions", "--videos", "2", "--types", "take_medicine",
               "--fps", "1", "--size", "64x48", "--steps", "50", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    out = json.loads((tmp_path / "probe.json").read_text())
    assert out["data"]["source"] == "world" and len(out["data"]["videos"]) == 2
    assert set(out["split"]["fold_of"].values()) == {0, 1}
    assert set(out["towers"]) == {"random", "tiny", "captions"}
    assert set(out["towers"]["tiny"]["features"]) == {"tower", "projected"}
    assert set(out["towers"]["captions"]["features"]) == {"words"}
    for tower in out["towers"].values():
        for r in tower["features"].values():
            assert 0 <= r["step"]["accuracy"] <= 1 and 0 <= r["states"]["accuracy"] <= 1
            assert 0 <= r["completion"]["auc"] <= 1 and r["completion"]["positives"] > 0
    assert (tmp_path / "probe.png").stat().st_size > 1000
    assert "(b) compl AUC" in capsys.readouterr().out


def test_the_hand_reference_sees_a_step_end_only_with_the_earlier_frame(tmp_path):
    """Right after a step ends the hands rest as in any pause: one frame's hand phase cannot tell
    all of (b); with the frame a second earlier (act -> rest) it can."""
    from proassist_ros.train.probe import main

    rc = main(["hand", "--videos", "2", "--types", "take_medicine", "--fps", "2", "--size", "64x48",
               "--steps", "100", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    r = json.loads((tmp_path / "probe.json").read_text())["towers"]["hand"]["features"]["phase"]
    assert r["completion_pair"]["auc"] >= 0.95
    assert r["completion"]["auc"] < r["completion_pair"]["auc"] - 0.03
