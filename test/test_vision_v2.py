"""Stage 1 v2: the world's facts as extra targets (train/vision_facts.py), on tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.world import make_episode, make_world
from proassist_ros.model import load
from proassist_ros.train.features import extract_features, load_features, tower_fingerprint
from proassist_ros.train.probe import completed as probe_completed
from proassist_ros.train.probe import object_states, roc_auc
from proassist_ros.train.vision import PRESETS, load_pair, load_tower_into, pretrain_tower, read_tower_config
from proassist_ros.train.vision_data import cache_frames
from proassist_ros.train.vision_facts import (
    FactHeads,
    FactVocab,
    FrameFacts,
    draw_batch_near,
    evaluate_heads,
    fact_losses,
    facts_of_video,
    frame_facts,
    parse_weights,
)

TINY_V2 = dict(preset="smoke", image_size=32, patch_size=4, hidden=32, layers=2, heads=2, intermediate=64,
               fps=2.0, facts=True)
STEPS = 10
STEPS_FACTS = [{"step": 0, "t_start": 1.0, "t_end": 3.0}, {"step": 1, "t_start": 4.0, "t_end": 6.2}]


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bags_v2")
    for i in range(3):
        write_episode(make_episode(11, "train", i, size=(64, 48), hz=2), root / f"ep{i}")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("frame_cache_v2")


@pytest.fixture(scope="module")
def trained(bags, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage1_v2") / "run"
    return pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=5, progress=False, cache_dir=cache, **TINY_V2)


def test_facts_of_a_hand_built_video():
    """Known answers: t − 1 < t_end ≤ t is a completion, steps by their intervals, look-aways masked."""
    t = np.arange(0, 8, 0.5)
    caps = ["On the table: a cup."] * len(t)
    caps[14] = "The camera is turned away from the table."  # t = 7.0
    f = facts_of_video(STEPS_FACTS, "make_tea", None, t, caps, window_s=1.0, near_before=2.0, near_after=3.0)
    want = [3.0, 3.5, 6.5, 7.0]  # 3.0 (t_end itself), 3.5; 6.5 (6.2 < 6.5 < 7.2) and 7.0 (look-away: unknown)
    assert [float(x) for x in t[f.completed == 1]] == want[:3]
    assert f.completed[14] == -1 and f.step[14] == "" and f.completed[0] == 0
    assert f.step[2] == "make_tea:0" and f.step[5] == "make_tea:0" and f.step[6] == "none" and f.step[8] == "make_tea:1"
    assert [float(x) for x in t[f.near]] == [x for x in t.tolist() if 1.0 <= x <= 6.0 or 4.2 <= x <= 9.2]
    assert f.hand == [""] * len(t) and f.states == [None] * len(t)  # no world: masked
    for i, tt in enumerate(t):  # the same rule as the probe's (b)
        if i != 14:
            assert f.completed[i] == float(probe_completed(STEPS_FACTS, float(tt), 1.0))
    no_steps = facts_of_video([], "x", None, t[:3], caps[:3])
    assert (no_steps.completed == -1).all() and not no_steps.near.any()


def test_frame_facts_from_bags_follow_the_world(bags, cache):
    data = cache_frames(bags, cache, 32, 2.0, progress=False)
    ff = frame_facts(bags, data, cache, progress=False)
    assert len(ff) == len(data) and (ff.completed == 1).sum() >= 2
    bag = sorted(bags.iterdir())[0]
    ep, _ = read_episode_base(bag)
    world = make_world(11, "train", 0)
    rows = [i for i, v in enumerate(data.videos) if v == ep.meta.video_id]
    steps = ep.meta.extra["steps"]
    for i in rows:
        if data.captions[i].startswith("The camera is turned away"):
            assert ff.states[i] is None and ff.completed[i] == -1
            continue
        assert ff.completed[i] == float(probe_completed(steps, float(data.t[i]), 1.0))
        assert ff.states[i] == object_states(world, float(data.t[i]))
    hands = {ff.hand[i] for i in rows}
    assert "step:act" in hands and len(hands) >= 3
    assert frame_facts(bags, data, cache, progress=False).step == ff.step  # from the cache: same
    assert len(list(cache.glob("facts_*.json"))) == 1


def test_vocab_targets_mask_per_object():
    facts = FrameFacts(np.array([1.0, 0.0, -1.0], np.float32), np.zeros(3, bool), ["t:0", "none", ""],
                       ["step:act", "", "idle:rest"],
                       [{"t/cup": "fill=water", "t/box": "open=True"}, {"t/cup": "fill=empty"}, None])
    v = FactVocab.build(facts)
    assert v.states == ["t/box=open=True", "t/cup=fill=empty", "t/cup=fill=water"]
    tg = v.targets(facts, [0, 1, 2])
    assert tg["completed"].tolist() == [1, 0, 0] and tg["completed_mask"].tolist() == [1, 1, 0]
    assert tg["step"].tolist() == [v.steps.index("t:0"), v.steps.index("none"), -100]
    assert tg["hand"].tolist() == [v.hands.index("step:act"), -100, v.hands.index("idle:rest")]
    assert tg["states"].tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert tg["states_mask"].tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 0]]  # frame 1 shows no box
    again = FactVocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again.targets(facts, [0])["states"].tolist() == [[1, 0, 1]]


def test_fact_losses_are_masked_and_per_frame():
    out = {"completed": torch.tensor([0.0, 0.0]), "step": torch.zeros(2, 3), "hand": torch.zeros(2, 2),
           "states": torch.zeros(2, 2)}
    tgt = {"completed": torch.tensor([1.0, 0.0]), "completed_mask": torch.tensor([1.0, 0.0]),
           "step": torch.tensor([0, -100]), "hand": torch.tensor([-100, -100]),
           "states": torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "states_mask": torch.tensor([[1.0, 1.0], [0.0, 0.0]])}
    got = fact_losses(out, tgt)
    ln2 = float(np.log(2))
    assert got["completed"].item() == pytest.approx(ln2 / 2)  # one frame counted, divided by the batch
    assert got["step"].item() == pytest.approx(np.log(3) / 2)
    assert got["hand"].item() == 0.0
    assert got["states"].item() == pytest.approx(2 * ln2 / 2)
    assert parse_weights("completed=7") == {**parse_weights(None), "completed": 7.0}
    assert parse_weights("siglip=0")["siglip"] == 0.0 and "siglip" not in parse_weights(None)  # facts only
    with pytest.raises(ValueError, match="unknown fact target"):
        parse_weights("colour=1")


def test_heads_learn_a_planted_signal_and_not_noise():
    """The heads + loss can find a linear completion cue in the features; a feature without it scores
    near chance (so evaluate_heads' AUC is not trivially high)."""
    g = torch.Generator().manual_seed(0)
    n, d = 400, 16
    x = torch.randn(n, d, generator=g)
    y = (x[:, 3] > 1.0).float()
    facts = FrameFacts(y.numpy(), np.zeros(n, bool), ["none"] * n, [""] * n, [None] * n)
    vocab = FactVocab.build(facts)
    torch.manual_seed(0)
    heads = FactHeads(d, vocab)
    opt = torch.optim.Adam(heads.parameters(), lr=0.05)
    tr = vocab.targets(facts, range(300))
    for _ in range(150):
        loss = fact_losses(heads(x[:300]), tr)["completed"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = facts.subset(np.arange(300, n))
    assert evaluate_heads(heads, vocab, x[300:], held)["completed_auc"] > 0.95
    shuffled = x[300:].clone()
    shuffled[:, 3] = torch.randn(n - 300, generator=g)  # the cue replaced by noise
    assert abs(evaluate_heads(heads, vocab, shuffled, held)["completed_auc"] - 0.5) < 0.15
    assert abs(roc_auc(y[300:].numpy() > 0, torch.randn(n - 300, generator=g).numpy()) - 0.5) < 0.15


def test_draw_batch_near_takes_its_share_from_near_frames():
    groups = [np.arange(0, 40), np.arange(40, 80), np.arange(80, 90)]
    near = [np.arange(10, 14), np.arange(40, 60), np.zeros(0, dtype=np.int64)]
    for step in range(20):
        idx = draw_batch_near(np.random.default_rng([1, step]), groups, near, 16, 8, 0.5)
        assert len(idx) == 16 and len(set(idx.tolist())) == 16
        for g, nr in zip(groups, near):
            mine = idx[np.isin(idx, g)]
            if len(mine):
                assert np.isin(mine, nr).sum() >= min(4, len(nr))
    a = draw_batch_near(np.random.default_rng([1, 3]), groups, near, 16, 8, 0.5)
    assert np.array_equal(a, draw_batch_near(np.random.default_rng([1, 3]), groups, near, 16, 8, 0.5))


def test_v2_run_outputs_a_tower_the_pipeline_loads(trained, bags, tmp_path):
    cfg = read_tower_config(trained)
    assert cfg["fact_heads"]["weights"] == parse_weights(None) and cfg["data"]["fps"] == 2.0
    assert cfg["fact_heads"]["completed_frames"] > 0
    log = [json.loads(x) for x in (trained / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == STEPS and all({"siglip", "loss_completed", "loss_states", "loss_step", "loss_hand"} <= set(r)
                                     for r in log)
    assert log[0]["loss"] == pytest.approx(log[0]["siglip"] + sum(
        cfg["fact_heads"]["weights"][k] * log[0][f"loss_{k}"] for k in ("completed", "step", "hand", "states")),
        rel=1e-4)
    tower = load_file(str(trained / "tower.safetensors"))
    assert all(not k.startswith("aux") for k in tower)
    heads = load_file(str(trained / "fact_heads.safetensors"))
    vocab = json.loads((trained / "fact_vocab.json").read_text())
    assert heads["states.weight"].shape == (len(vocab["states"]), 32)
    assert not any(k.startswith("aux") for k in load_file(str(trained / "text_tower.safetensors")))
    load_pair(trained)  # the text side still rebuilds (heads are not part of it)
    ev = json.loads((trained / "vision_eval.json").read_text())
    assert 0 <= ev["fact_heads"]["step_accuracy"] <= 1 and ev["fact_heads"]["frames"] == ev["frames"]

    model = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=1)  # what features / stage 2 do
    load_tower_into(model, trained)
    smallest = min(bags.iterdir(), key=lambda b: sum(f.stat().st_size for f in b.iterdir()))
    paths = extract_features(model, [smallest], tmp_path / "feats", fps=2.0, progress=False)
    feats, _ = load_features(paths[0], fingerprint=tower_fingerprint(model), tokens_per_frame=5)
    assert feats.shape[1:] == (5, 32)


def test_v2_resume_gives_the_uninterrupted_result(bags, cache, trained, tmp_path):
    out = tmp_path / "sliced"
    pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=5, progress=False, stop_after=6, cache_dir=cache,
                   **TINY_V2)
    assert not (out / "tower.safetensors").exists()
    with pytest.raises(ValueError, match=r"aux\.weights"):
        pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=5, progress=False, cache_dir=cache,
                       **{**TINY_V2, "fact_weights": "completed=9"})
    with pytest.raises(ValueError, match="fact heads"):
        pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=5, progress=False, cache_dir=cache,
                       **{**TINY_V2, "facts": False})
    pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=5, progress=False, cache_dir=cache, **TINY_V2)
    want, got = load_file(str(trained / "tower.safetensors")), load_file(str(out / "tower.safetensors"))
    for k in want:
        assert torch.allclose(want[k], got[k], atol=1e-5), k
    hw, hg = load_file(str(trained / "fact_heads.safetensors")), load_file(str(out / "fact_heads.safetensors"))
    assert all(torch.allclose(hw[k], hg[k], atol=1e-5) for k in hw)


def test_facts_change_training_and_presets_stay(bags, cache, trained, tmp_path):
    """Without facts the same run (same seed, frames) ends elsewhere: the heads' gradients reach the tower."""
    plain = pretrain_tower(bags, tmp_path / "plain", steps=STEPS, ckpt_every=4, seed=5, progress=False,
                           cache_dir=cache, evaluate=False, **{**TINY_V2, "facts": False})
    assert not (plain / "fact_heads.safetensors").exists()
    assert "fact_heads" not in read_tower_config(plain)
    a, b = load_file(str(trained / "tower.safetensors")), load_file(str(plain / "tower.safetensors"))
    assert any(not torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert PRESETS["v2"]["facts"] and PRESETS["v2"]["fps"] == 2.0
    v2_shape = {k: PRESETS["v2"][k] for k in ("image_size", "patch_size", "hidden", "layers", "heads")}
    assert v2_shape == {k: PRESETS["default"][k] for k in v2_shape}  # same tower as the shipped one: I = 1 cost
    assert "facts" not in PRESETS["default"] and "facts" not in PRESETS["smoke"]


def test_command_line_v2_flags(bags, cache, tmp_path):
    from proassist_ros.train.vision_cli import main

    assert main(["pretrain", "--data", str(bags), "--out", str(tmp_path / "t"), "--preset", "smoke", "--steps", "2",
                 "--image-size", "32", "--patch-size", "4", "--hidden", "32", "--intermediate", "64", "--fps", "2",
                 "--facts", "--fact-weights", "completed=3", "--near-frac", "0.25",
                 "--cache-dir", str(cache), "--no-eval", "--quiet"]) == 0
    cfg = read_tower_config(tmp_path / "t")
    assert cfg["fact_heads"]["weights"]["completed"] == 3.0 and cfg["fact_heads"]["near_frac"] == 0.25


def test_probe_reads_a_stage1_tower_at_i5(trained):
    from proassist_ros.train.probe import encode, load_towers

    one, five = load_towers([str(trained)])[0], load_towers([str(trained), "random"], patch_grid=2)
    assert (one.tokens_per_frame, five[0].tokens_per_frame, five[1].tokens_per_frame) == (1, 5, 5)
    assert five[0].name.endswith("_I5")
    pixels = torch.rand(3, 3, 32, 32) * 2 - 1
    f1, f5 = encode(one, pixels), encode(five[0], pixels)
    assert f1["tower"].shape == (3, 32) and f5["tower"].shape == (3, 5 * 32)
    assert np.allclose(f5["tower"][:, :32], f1["tower"], atol=1e-6)  # token 1 is the same MAP token


def test_init_tower_starts_from_its_weights_and_refuses_another_shape(bags, cache, trained, tmp_path):
    out = pretrain_tower(bags, tmp_path / "ft", steps=2, lr=1e-12, ckpt_every=2, seed=6, progress=False,
                         cache_dir=cache, evaluate=False, init_tower=trained, **TINY_V2)
    start, got = load_file(str(trained / "tower.safetensors")), load_file(str(out / "tower.safetensors"))
    assert all(torch.allclose(start[k], got[k], atol=1e-6) for k in start)
    assert read_tower_config(out)["train"]["init_tower"] == str(trained)
    fresh = pretrain_tower(bags, tmp_path / "fresh", steps=2, lr=1e-12, ckpt_every=2, seed=6, progress=False,
                           cache_dir=cache, evaluate=False, **TINY_V2)
    other = load_file(str(fresh / "tower.safetensors"))
    assert any(not torch.allclose(start[k], other[k], atol=1e-3) for k in start)  # it can fail
    with pytest.raises(ValueError, match="patch_size"):
        pretrain_tower(bags, tmp_path / "bad", steps=2, progress=False, cache_dir=cache, evaluate=False,
                       init_tower=trained, **{**TINY_V2, "patch_size": 8})
