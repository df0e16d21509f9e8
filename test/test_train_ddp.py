"""DDP: `proassist train` under torchrun with 2 CPU processes (gloo) on the tiny model.

Two ranks with one sequence each per step consume the same samples as one process with two
accumulated sequences per step, and DDP averages gradients as accumulation does — so the two
runs must agree step for step, and the ranks must end with identical weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.world import make_episode
from proassist_ros.train.config import TrainConfig
from proassist_ros.train.presets import preset
from proassist_ros.train.trainer import train

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps(out: Path) -> list[dict]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "step"]


def test_ddp_two_processes_equal_one_process_with_accumulation(tmp_path):
    bags = tmp_path / "bags"
    for i in range(2):
        write_episode(make_episode(1, "train", i, size=(64, 48), hz=2), bags / f"b{i}")
    common = ["--data", str(bags), "--preset", "smoke", "--steps", "3", "--warmup", "1", "--save-every", "3",
              "--no-export", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "proassist_ros.train.cli", *common, "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    values = {**preset("smoke"), "data": [str(bags)], "out": str(tmp_path / "one"), "steps": 3,
              "warmup": 1, "save_every": 3, "export": False, "grad_accum": 2}
    train(TrainConfig(**values), progress=False)

    ddp, one = steps(tmp_path / "ddp"), steps(tmp_path / "one")
    assert len(ddp) == len(one) == 3
    for a, b in zip(ddp, one):
        assert len(a["samples"]) == 2 and a["samples"][0] != a["samples"][1]  # ranks differ
        assert a["samples"] == b["samples"]
        assert abs(a["loss"] - b["loss"]) < 1e-4 and a["n_decisions"] == b["n_decisions"]
    end = [json.loads(x) for x in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()][-1]
    assert end["event"] == "end" and end["replicas_in_sync"] and len(end["rank_digests"]) == 2
    wa = load_file(str(tmp_path / "ddp" / "checkpoint-3" / "trainable.safetensors"))
    wb = load_file(str(tmp_path / "one" / "checkpoint-3" / "trainable.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoint-3").glob("rng-*")) == \
        ["rng-0.safetensors", "rng-1.safetensors"]
