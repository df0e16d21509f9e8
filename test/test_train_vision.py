"""Stage 1 (vision tower pretraining) and stage-2 feature pre-extraction, on tiny sizes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.world import make_episode
from proassist_ros.model import load, save
from proassist_ros.model.vision import build_vision_tower, preprocess
from proassist_ros.runtime.sampling import sampled_frames
from proassist_ros.train.features import extract_features, load_features, tower_fingerprint
from proassist_ros.train.vision import (
    SiglipPair,
    TowerSettings,
    caption_labels,
    load_pair,
    load_tower_into,
    pretrain_tower,
    read_tower_config,
    sigmoid_loss,
    target_labels,
)
from proassist_ros.train.vision_data import (
    EOS,
    PAD,
    UNK,
    CaptionVocab,
    FrameSet,
    cache_frames,
    phrases,
    text_targets,
    to_pixels,
)
from proassist_ros.train.vision_eval import cross_video_progress, neighbour_accuracy

# A tower shaped like load("tiny")'s (32 px, 4 px patches, hidden 32, 2 layers, 2 heads, MLP 64),
# so the trained tower can be put into a tiny ProAssist model.
TINY_TOWER = dict(preset="smoke", image_size=32, patch_size=4, hidden=32, layers=2, heads=2, intermediate=64)
STEPS = 12


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bags")
    for i in range(3):
        write_episode(make_episode(11, "train", i, size=(64, 48), hz=2), root / f"ep{i}")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One frame cache for all runs on ``bags`` (decoding is the slow part of a smoke run)."""
    return tmp_path_factory.mktemp("frame_cache")


@pytest.fixture(scope="module")
def trained(bags, cache, tmp_path_factory) -> Path:
    """One uninterrupted smoke run (the reference for the resume test)."""
    out = tmp_path_factory.mktemp("stage1") / "run"
    return pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=3, progress=False, cache_dir=cache,
                          **TINY_TOWER)


def test_identical_captions_are_positives():
    """A hand-made case with a known answer; duplicates on both sides are positives."""
    img_caps, txt_caps = ["cup full", "cup empty", "cup full"], ["cup full", "cup empty"]
    labels = caption_labels(img_caps, txt_caps)
    assert labels.tolist() == [[1, 0], [0, 1], [1, 0]]
    assert caption_labels(img_caps, img_caps).tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]

    img = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])  # normalised inside the loss
    txt = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    t_prime, b = torch.tensor(math.log(4.0)), torch.tensor(-1.0)
    # cosines: positives 1, negatives 0 → logits +3 (positives), −1 (negatives); 3 pos, 3 neg, 3 images.
    want = -(3 * F.logsigmoid(torch.tensor(3.0)) + 3 * F.logsigmoid(torch.tensor(1.0))) / 3
    assert torch.allclose(sigmoid_loss(img, txt, labels, t_prime, b), want)
    # A diagonal label matrix would call frame 3's identical caption a negative: its logit +3 then
    # costs −log σ(−3) instead of −log σ(3), i.e. exactly 3 more, over 3 images.
    diagonal = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert torch.allclose(sigmoid_loss(img, txt, diagonal, t_prime, b), want + 1.0)


def test_phrases_and_their_labels():
    """Phrase targets: each thing with its states, the held thing, the action; shared ones are positives."""
    a = "On the table: a glass (empty, clean), a jug (full of water); the hand is reaching for the jug."
    b = "On the table: a glass (full of water), a jug (full of water); the hand holds a jug (empty)."
    assert phrases(a) == ["a glass (empty, clean)", "a jug (full of water)", "the hand is reaching for the jug"]
    assert phrases(b) == ["a glass (full of water)", "a jug (full of water)", "the hand holds a jug (empty)"]
    assert phrases("a user's caption") == ["a user's caption"]
    assert text_targets(a, "captions") == [a]
    texts = ["a jug (full of water)", "a glass (empty, clean)", "a glass (full of water)", "something else"]
    assert target_labels([phrases(a), phrases(b)], texts).tolist() == [[1, 1, 0, 0], [1, 0, 1, 0]]
    with pytest.raises(ValueError, match="targets"):
        text_targets(a, "words")


def test_vocabulary_left_pads_and_keeps_the_end():
    vocab = CaptionVocab.build(["On the table: a red cup (empty); the hand is resting.", "a b"])
    ids, mask, pos = vocab.batch(["a red cup", "a zebra"])
    assert ids[:, -1].tolist() == [EOS, EOS]  # SigLIP pools the last position: <eos> for every caption
    assert ids[1].tolist() == [PAD, vocab.index["a"], UNK, EOS] and mask[1].tolist() == [0, 1, 1, 1]
    assert pos[0].tolist() == [0, 1, 2, 3] and pos[1].tolist() == [0, 0, 1, 2]
    short = CaptionVocab(vocab.tokens, max_len=3)
    assert short.encode("a red cup") == [vocab.index["red"], vocab.index["cup"], EOS]


def test_neighbour_checks_on_hand_made_features():
    """Features that encode progress exactly: every neighbour agrees; chance is the label share."""
    progress = np.array([0, 0, 1, 1, 0, 1, 1])
    feats = torch.tensor([[1.0, 0.0] if p == 0 else [0.0, 1.0] for p in progress]) + 0.01 * torch.arange(7)[:, None]
    videos, t = ["a"] * 4 + ["b"] * 3, np.array([0.0, 1.0, 5.0, 6.0, 0.0, 3.0, 9.0])
    within = neighbour_accuracy(feats, videos, t, progress.tolist(), window_s=2.0)
    # Only b@3 and b@9 have a same-progress frame ≥ 2 s away (each other); a@5 and a@6 are too close.
    assert within == {"accuracy": round(2 / 7, 4), "chance": round(1 / 7, 4), "queries": 7}
    data = FrameSet(np.zeros((7, 1, 1, 3), np.uint8), [""] * 7, videos, t, progress, ["tea"] * 4 + ["tea"] * 3)
    ref = FrameSet(np.zeros((3, 1, 1, 3), np.uint8), [""] * 3, ["c", "c", "d"], np.zeros(3), np.array([0, 1, 1]),
                   ["tea", "tea", "lamp"])
    ref_feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    cross = cross_video_progress(feats, data, ref_feats, ref)  # "d" is another task: never a candidate
    assert cross == {"accuracy": 1.0, "chance": 0.5, "queries": 7}
    assert cross_video_progress(feats, data, ref_feats[2:], ref.subset(np.array([2])))["accuracy"] is None


def test_cached_frames_are_what_the_model_sees(bags, cache):
    """Frames on the node's 1 fps grid, preprocessed exactly as at inference, with their captions."""
    data = cache_frames(bags, cache, 32, 1.0, progress=False)
    bag = sorted(bags.iterdir())[0]
    ep, t0 = read_episode_base(bag)
    kept = list(sampled_frames(ep, 1.0, t0))
    n = len(kept)
    assert data.videos[:n] == [ep.meta.video_id] * n and data.videos[n] != ep.meta.video_id
    assert np.array_equal(data.t[:n], [t for t, _ in kept])
    assert np.allclose(np.diff(data.t[:n]), 1.0)
    assert torch.equal(to_pixels(data.frames[:n]), preprocess([f for _, f in kept], 32))
    by_time = {round(c.t, 3): c.text for c in ep.captions}
    assert data.captions[:n] == [by_time[round(t, 3)] for t, _ in kept]
    files = sorted(cache.iterdir())
    assert cache_frames(bags, cache, 32, 1.0, progress=False).captions == data.captions
    assert sorted(cache.iterdir()) == files  # reused, nothing rebuilt


def test_bag_without_captions_is_refused(tmp_path):
    ep = make_episode(11, "train", 0, size=(64, 48), hz=2)
    bag = write_episode(dataclasses.replace(ep, captions=[]), tmp_path / "nocap")
    with pytest.raises(ValueError, match="no captions"):
        cache_frames(bag, tmp_path / "cache", 32, 1.0, progress=False)


def test_smoke_pretraining_lowers_the_loss(trained, cache):
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    pair = load_pair(trained)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)  # the run's seed: the same initial weights
        start = SiglipPair(TowerSettings(32, 4, 32, 2, 2, 64), pair.vocab)
    frames = np.load(next(cache.glob("frames_*.npy")))
    caps = json.loads(next(cache.glob("frames_*.json")).read_text())["captions"]
    idx = np.random.default_rng(0).choice(len(caps), 48, replace=False)
    assert pair.targets == "phrases"
    targets = [phrases(caps[i]) for i in idx]
    texts = list(dict.fromkeys(t for ts in targets for t in ts))

    def loss(p: SiglipPair) -> float:
        with torch.no_grad():
            return float(sigmoid_loss(p.embed_images(to_pixels(frames[idx])), p.embed_texts(texts),
                                      target_labels(targets, texts), p.logit_scale, p.logit_bias))

    assert loss(pair) < 0.7 * loss(start)


def test_outputs_and_evaluation(trained):
    cfg = read_tower_config(trained)
    assert (cfg["image_size"], cfg["patch_size"], cfg["hidden"], cfg["layers"]) == (32, 4, 32, 2)
    assert cfg["data"]["videos"] == 2 and "held out" in cfg["val"]  # 3 videos, the last held out
    ev = json.loads((trained / "vision_eval.json").read_text())
    assert ev["videos"] == 1 and ev["frames"] > 20 and ev["distinct_captions"] > 3
    assert 0 <= ev["recall@1"] <= ev["recall@5"] <= 1
    for tower in ("trained_tower", "random_tower"):
        for check in ("same_state", "same_progress"):
            r = ev[tower][check]
            assert r["queries"] == ev["frames"] and 0 <= r["chance"] <= 1 and 0 <= r["accuracy"] <= 1


def test_resume_gives_the_uninterrupted_result(bags, cache, trained, tmp_path):
    out = tmp_path / "sliced"
    pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=3, progress=False, stop_after=6,
                   cache_dir=cache, **TINY_TOWER)
    assert not (out / "tower.safetensors").exists()
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_000004", "step_000006"]
    with pytest.raises(ValueError, match=r"train\.lr"):
        pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=3, progress=False, lr=1e-2, cache_dir=cache,
                       **TINY_TOWER)
    pretrain_tower(bags, out, steps=STEPS, ckpt_every=4, seed=3, progress=False, cache_dir=cache, **TINY_TOWER)
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
    want, got = load_file(str(trained / "tower.safetensors")), load_file(str(out / "tower.safetensors"))
    assert set(want) == set(got)
    for k in want:
        assert torch.allclose(want[k], got[k], atol=1e-5), k
    step8 = load_file(str(out / "checkpoints" / "step_000008" / "weights.safetensors"))
    assert any(not torch.allclose(want[k], step8[f"vision.{k}"], atol=1e-4) for k in want)  # it can fail


def test_load_tower_into_round_trips(trained, tmp_path):
    model = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=1)
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 48, 64, 3), dtype=np.uint8)
    before = model.encode_frames(frames)
    load_tower_into(model, trained)
    after = model.encode_frames(frames)
    assert not torch.allclose(before, after)
    tower = build_vision_tower(model.vision.config.to_dict())
    tower.load_state_dict(load_file(str(trained / "tower.safetensors")))
    with torch.no_grad():
        assert torch.allclose(after[:, 0], tower(pixel_values=preprocess(frames, 32)).pooler_output, atol=1e-6)
    reloaded = load(str(save(model, tmp_path / "ckpt")))
    assert torch.equal(reloaded.encode_frames(frames), after)

    with pytest.raises(ValueError, match="hidden_size: tower 32 vs model 48"):
        load_tower_into(load("tiny", vision_hidden=48), trained)
    with pytest.raises(ValueError, match="image_size"):
        load_tower_into(load("tiny", image_size=36), trained)


def test_extract_features(bags, tmp_path):
    model = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=2)
    bag_list = sorted(bags.iterdir(), key=lambda b: sum(f.stat().st_size for f in b.iterdir()))[:1]
    calls = {"n": 0}
    encode = model.encode_frames

    def counting(frames):
        calls["n"] += 1
        return encode(frames)

    model.encode_frames = counting
    out = tmp_path / "feats"
    paths = extract_features(model, bag_list, out, fps=2.0, batch=50, progress=False)
    first_calls = calls["n"]
    ep, t0 = read_episode_base(bag_list[0])
    kept = list(sampled_frames(ep, 2.0, t0))
    feats, t = load_features(paths[0], fingerprint=tower_fingerprint(model), fps=2.0, tokens_per_frame=5)
    assert paths[0].name == f"{ep.meta.video_id}.safetensors"
    assert feats.dtype == torch.float16 and feats.shape == (len(kept), 5, 32)
    assert np.array_equal(t, [tk for tk, _ in kept]) and np.allclose(t, 0.5 * np.arange(len(kept)))
    with torch.no_grad():
        want = encode([f for _, f in kept])
    assert torch.allclose(feats.float(), want, atol=2e-3, rtol=2e-3)
    side = json.loads(paths[0].with_suffix(".json").read_text())
    assert side["frames"] == len(kept) and side["I"] == 5 and side["D"] == 32 and side["fps"] == 2.0

    assert extract_features(model, bag_list, out, fps=2.0, progress=False) == paths
    assert calls["n"] == first_calls  # all up to date: nothing encoded again

    with torch.no_grad():
        model.vision.post_layernorm.bias.add_(0.5)  # a changed tower
    extract_features(model, bag_list, out, fps=2.0, batch=50, progress=False)
    assert calls["n"] == 2 * first_calls
    feats2, _ = load_features(paths[0], fingerprint=tower_fingerprint(model))
    assert not torch.allclose(feats2.float(), feats.float(), atol=1e-2)
    with pytest.raises(ValueError, match="tower fingerprint"):
        load_features(paths[0], fingerprint="0" * 64)
    with pytest.raises(ValueError, match="fps"):
        load_features(paths[0], fps=1.0)
    with pytest.raises(FileNotFoundError):
        load_features(out / "nope.safetensors")


def test_command_line_runs_both_steps(bags, cache, trained, tmp_path, capsys):
    from proassist_ros.train.vision_cli import main

    smallest = min(bags.iterdir(), key=lambda b: sum(f.stat().st_size for f in b.iterdir()))
    assert main(["pretrain", "--data", str(bags), "--out", str(tmp_path / "t"), "--preset", "smoke", "--steps", "2",
                 "--image-size", "32", "--patch-size", "4", "--hidden", "32", "--intermediate", "64",
                 "--cache-dir", str(cache), "--no-eval", "--quiet"]) == 0
    assert read_tower_config(tmp_path / "t")["train"]["steps"] == 2
    assert main(["features", "--data", str(smallest), "--out", str(tmp_path / "f"), "--model", "tiny",
                 "--tower", str(trained), "--quiet"]) == 0
    model = load("tiny")
    load_tower_into(model, trained)
    feats, t = load_features(next((tmp_path / "f").glob("*.safetensors")), fingerprint=tower_fingerprint(model))
    assert feats.shape == (len(t), 1, 32)


def test_conv_stem_tower_trains_ships_and_loads(bags, cache, trained, tmp_path):
    """``--patch-stem conv``: a ConvStem makes the same patch grid as the patch embedding; the stage-1
    output says so, a model built to fit it takes it, and it survives a checkpoint round trip."""
    from proassist_ros.model.vision import ConvStem

    out = pretrain_tower(bags, tmp_path / "conv", steps=4, ckpt_every=2, seed=3, progress=False, cache_dir=cache,
                         patch_stem="conv", **TINY_TOWER)
    cfg = json.loads((out / "vision_config.json").read_text())
    assert cfg["siglip_vision_config"]["patch_stem"] == "conv"
    state = load_file(str(out / "tower.safetensors"))
    assert any(k.startswith("embeddings.patch_embedding.0.") for k in state)  # the stem's first convolution

    frames = np.random.default_rng(0).integers(0, 256, size=(3, 48, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="patch_stem: tower 'conv' vs model None"):
        load_tower_into(load("tiny", chat_format="chatml", tokens_per_frame=5, seed=1), out)
    model = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=1, patch_stem="conv")
    assert isinstance(model.vision.embeddings.patch_embedding, ConvStem)
    patch = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=1)
    assert model.encode_frames(frames).shape == patch.encode_frames(frames).shape == (3, 5, 32)
    load_tower_into(model, out)
    feats = model.encode_frames(frames)
    reloaded = load(str(save(model, tmp_path / "ckpt")))
    assert isinstance(reloaded.vision.embeddings.patch_embedding, ConvStem)
    assert torch.equal(reloaded.encode_frames(frames), feats)

    # Started from a patch tower, a conv-stem run takes all of it but the stem.
    init = pretrain_tower(bags, tmp_path / "init", steps=1, seed=3, progress=False, cache_dir=cache, lr=1e-12,
                          patch_stem="conv", init_tower=trained, evaluate=False, **TINY_TOWER)
    got, base = load_file(str(init / "tower.safetensors")), load_file(str(trained / "tower.safetensors"))
    body = [k for k in base if not k.startswith("embeddings.patch_embedding.")]
    assert body and all(torch.allclose(got[k], base[k], atol=1e-6) for k in body)
    assert "embeddings.patch_embedding.0.weight" in got and "embeddings.patch_embedding.weight" in base

    # Resuming the run with the other stem is refused, naming the setting.
    pretrain_tower(bags, tmp_path / "sliced", steps=4, ckpt_every=2, seed=3, progress=False, cache_dir=cache,
                   stop_after=2, patch_stem="conv", **TINY_TOWER)
    with pytest.raises(ValueError, match="settings.patch_stem"):
        pretrain_tower(bags, tmp_path / "sliced", steps=4, ckpt_every=2, seed=3, progress=False, cache_dir=cache,
                       **TINY_TOWER)


def test_conv_stem_shape_rules():
    from proassist_ros.model.vision import ConvStem

    x = torch.randn(2, 3, 128, 128)
    assert ConvStem(64, 16)(x).shape == (2, 64, 8, 8)
    assert ConvStem(64, 8)(x).shape == (2, 64, 16, 16)
    with pytest.raises(ValueError, match="power of 2"):
        ConvStem(64, 14)
    # Its batch norms train only while the stem does: a frozen tower computes as at inference.
    stem = ConvStem(16, 4)
    stem.train()
    assert stem[1].training
    y_train = stem(x)
    stem.requires_grad_(False)
    stem.train()
    assert not stem[1].training and not stem.training
    before = stem[1].running_mean.clone()
    stem(x)
    assert torch.equal(stem[1].running_mean, before)  # no statistics updated when frozen
    assert not torch.allclose(stem(x), y_train)  # running statistics, not the batch's
    with pytest.raises(ValueError, match="unknown patch_stem 'fancy'"):
        build_vision_tower({"image_size": 32, "patch_size": 4, "hidden_size": 32, "patch_stem": "fancy"})
