"""`proassist train pipeline`: the stages run in order as the CLI's own commands, and a second call
resumes instead of redoing (train/pipeline.py). The full smoke pipeline to a shipped model takes
minutes on 2 cores; this runs it through stage 1, the ship step is covered by test_train_run's
ship tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proassist_ros.train.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]


def _pipeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proassist_ros.cli", "train", "pipeline", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_stages_are_the_cli_commands(tmp_path):
    p = Pipeline(tmp_path, "default", None)
    data = p.commands("data")
    assert [c[c.index("--split") + 1] for c in data] == ["train", "train", "val"]
    assert "--long" in data[1] and all("--skip-existing" in c for c in data)
    # θ is chosen on validation videos only: never a test-split path.
    (tmp_path / "data" / "val").mkdir(parents=True)
    for k in range(24):
        (tmp_path / "data" / "val" / f"val_{k:04d}_x").mkdir()
    theta = p.commands("theta")[0]
    bags = [a for a in theta if "/data/" in a]
    assert len(bags) == 12 and all("/data/val/val_00" in b for b in bags)
    assert bags[0].endswith("val_0006_x") and bags[-1].endswith("val_0017_x")
    s2 = p.commands("stage2")[0]
    assert "--resume" not in s2 and s2[s2.index("--tower") + 1] == str(tmp_path / "tower")
    assert "--nproc_per_node=2" in s2 and s2[s2.index("--steps") + 1] == "750"  # 2 ranks × 750
    base, s1 = p.commands("stage1")  # the v1 tower recipe, then the v5 tower started from it
    assert base[base.index("--preset") + 1] == "default"
    assert base[base.index("--out") + 1] == str(tmp_path / "tower_base")
    assert s1[s1.index("--preset") + 1] == "v5" and s1[s1.index("--init-tower") + 1] == str(tmp_path / "tower_base")
    assert s1[s1.index("--out") + 1] == str(tmp_path / "tower")
    (tmp_path / "tower_base").mkdir()
    (tmp_path / "tower_base" / "tower.safetensors").write_bytes(b"")
    assert p.commands("stage1") == [s1]  # a finished base tower is not trained again on resume
    assert "--nproc_per_node=2" in theta
    assert "torch.distributed.run" not in Pipeline(tmp_path, "smoke", None).commands("stage2")[0]
    with pytest.raises(ValueError, match="unknown stage"):
        p.commands("deploy")


def test_smoke_pipeline_runs_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = _pipeline("--preset", "smoke", "--out", str(out), "--until", "stage1")
    assert first.returncode == 0, first.stderr[-2000:]
    state = json.loads((out / "pipeline.json").read_text())
    assert list(state["stages"]) == ["data", "stage1"] and all(s["done"] for s in state["stages"].values())
    assert len(list((out / "data" / "train").iterdir())) == 2
    assert (out / "tower" / "vision_config.json").is_file()
    again = _pipeline("--preset", "smoke", "--out", str(out), "--until", "stage1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "data: done earlier" in again.stdout and "stage1: done earlier" in again.stdout
    assert "synth" not in again.stdout  # nothing re-run
    other = _pipeline("--preset", "default", "--out", str(out))
    assert other.returncode == 2 and "started with --preset smoke" in other.stderr
