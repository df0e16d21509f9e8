"""Stage-2 training runs on the tiny model: loss goes down, exports load, resume, --base, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.world import make_episode
from proassist_ros.model import load
from proassist_ros.train.checkpoints import apply_adapter
from proassist_ros.train.cli import main
from proassist_ros.train.config import TrainConfig
from proassist_ros.train.presets import preset
from proassist_ros.train.trainer import train


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bags")
    for i in range(2):
        write_episode(make_episode(0, "train", i, size=(64, 48), hz=2), d / f"b{i}")
    return d


def config(bags: Path, out: Path, **kw) -> TrainConfig:
    values = {**preset("smoke"), "data": [str(bags)], "out": str(out), "steps": 6, "save_every": 3}
    values.update(kw)
    return TrainConfig(**values)


def records(out: Path, event: str) -> list[dict]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


@pytest.fixture(scope="module")
def smoke_run(bags, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "run"
    train(config(bags, out, val=[str(bags / "b0")]), progress=False)
    return out


def test_smoke_run_lowers_the_loss_and_exports(smoke_run):
    vals = records(smoke_run, "val")
    assert [v["step"] for v in vals] == [0, 6]
    assert vals[1]["loss"] < vals[0]["loss"] - 0.3, vals  # teacher-forced loss on held data
    steps = records(smoke_run, "step")
    assert [s["step"] for s in steps] == list(range(1, 7))
    for s in steps:
        assert s["n_decisions"] > 0 and s["n_asst_tokens"] > 0
        assert 0 <= s["decision_acc"] <= 1 and s["asst_loss"] > 0 and len(s["samples"]) == 1
    merged = load(smoke_run / "model")
    assert merged.config.untrained  # a random tiny tower stays marked untrained
    assert "proassist train" in merged.config.source
    # The small adapter reproduces the merged model on a fresh base (fp16 storage: ~1e-3).
    fresh = apply_adapter(load("tiny"), smoke_run / "adapter")
    ref = merged.state_dict()
    for k, v in fresh.state_dict().items():
        assert torch.allclose(v, ref[k], atol=5e-3), k
    assert (smoke_run / "adapter" / "adapter.safetensors").stat().st_size < 8e6  # no base weights


def test_resume_gives_the_weights_of_an_uninterrupted_run(bags, tmp_path):
    kw = dict(data=[str(bags / "b1")], export=False, lora_dropout=0.1)  # dropout: RNG restored too
    train(config(bags, tmp_path / "a", **kw), progress=False)
    stopped = train(config(bags, tmp_path / "b", stop_at=4, **kw), progress=False)
    assert stopped["event"] == "stopped" and (tmp_path / "b" / "checkpoint-4").is_dir()
    with pytest.raises(FileExistsError, match="--resume"):
        train(config(bags, tmp_path / "b", **kw), progress=False)
    with pytest.raises(ValueError, match="seed"):
        train(config(bags, tmp_path / "b", resume=True, seed=5, **kw), progress=False)
    train(config(bags, tmp_path / "b", resume=True, **kw), progress=False)
    a = load_file(str(tmp_path / "a" / "checkpoint-6" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoint-6" / "trainable.safetensors"))
    assert a.keys() == b.keys() and any(k.endswith("lora_B.default.weight") for k in a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    la = {r["step"]: r["loss"] for r in records(tmp_path / "a", "step")}
    lb = {r["step"]: r["loss"] for r in records(tmp_path / "b", "step")}
    assert all(abs(la[s] - lb[s]) < 1e-6 for s in range(1, 7))


def test_base_continues_from_a_saved_checkpoint(smoke_run, bags, tmp_path):
    out = tmp_path / "c"
    train(config(bags, out, base=str(smoke_run / "model"), steps=2, val=[str(bags / "b0")]),
          progress=False)
    before, after = records(out, "val")
    trained = records(smoke_run, "val")[-1]
    # A fresh LoRA starts at zero: step 0 of the new run is the saved model itself.
    assert before["loss"] == pytest.approx(trained["loss"], abs=1e-4)
    assert load(out / "model").config.untrained


def test_a_bag_without_references_is_refused(bags, tmp_path, capsys):
    ep = make_episode(0, "train", 5, size=(64, 48), hz=2)
    ep.references = [r for r in ep.references if r.kind == "progress_summary"]
    bag = write_episode(ep, tmp_path / "norefs")
    code = main(["--data", str(bags / "b0"), str(bag), "--out", str(tmp_path / "x"),
                 "--preset", "smoke", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(bag) in err and "has no /proassist/reference turns" in err


def test_ship_packages_tower_and_adapter_in_fp16(bags, smoke_run, tmp_path):
    """`train.ship` = what load("embedded") reads: the tower in fp16, the adapter as trained, θ."""
    from proassist_ros.train.ship import ship
    from proassist_ros.train.vision import pretrain_tower

    tower = pretrain_tower(bags, tmp_path / "tower", preset="smoke", heads=1, intermediate=128, steps=2,
                           progress=False, evaluate=False)
    out = ship(tower, smoke_run / "adapter", 0.35, tmp_path / "shipped")
    assert sorted(f.name for f in out.iterdir()) == ["adapter.safetensors", "adapter_config.json",
                                                     "tower.safetensors", "vision_config.json"]
    fp32 = load_file(str(tower / "tower.safetensors"))
    shipped = load_file(str(out / "tower.safetensors"))
    assert set(shipped) == set(fp32) and all(v.dtype == torch.float16 for v in shipped.values())
    assert all(torch.equal(shipped[k], v.half()) for k, v in fp32.items())
    assert (out / "adapter.safetensors").read_bytes() == (smoke_run / "adapter" / "adapter.safetensors").read_bytes()
    info = json.loads((out / "adapter_config.json").read_text())
    assert info["theta"] == 0.35 and info["context_limit"] == 512
    # A conv-stem tower ships with its stem named and its batch-norm counters as integers.
    from proassist_ros.model.tower import tower_overrides

    conv = pretrain_tower(bags, tmp_path / "conv", preset="smoke", heads=1, intermediate=128, steps=2,
                          progress=False, evaluate=False, patch_stem="conv")
    out_conv = ship(conv, smoke_run / "adapter", 0.35, tmp_path / "shipped_conv")
    assert tower_overrides(out_conv)["patch_stem"] == "conv"
    state = load_file(str(out_conv / "tower.safetensors"))
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters and all(state[k].dtype == torch.int64 and int(state[k]) == 2 for k in counters)
    assert all(v.dtype == torch.float16 for k, v in state.items() if k not in counters)
    with pytest.raises(ValueError, match="theta"):
        ship(tower, smoke_run / "adapter", 1.5, tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="not a proassist adapter directory"):
        ship(tower, tmp_path, 0.3, tmp_path / "bad")
