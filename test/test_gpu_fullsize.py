"""bench/gpu_fullsize.py: a clear exit without CUDA, and the whole script on tiny shapes (--smoke)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_fullsize.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_fullsize", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_cuda_it_says_so(monkeypatch, capsys, tmp_path):
    mod = _module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mod.main(["--out", str(tmp_path / "r.json")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_smoke_run_writes_every_figure(tmp_path):
    out = tmp_path / "r.json"
    assert _module().main(["--smoke", "--out", str(out), "--context", "40", "--reps", "2", "--streams", "1,3"]) == 0
    r = json.loads(out.read_text())
    assert r["smoke"] and set(r["by_tokens_per_frame"]) == {"1", "5", "10"}
    one = r["by_tokens_per_frame"]["1"]
    assert one["silent_fps"] > 0 and one["first_token_ms"] > 0
    assert set(one["streams"]) == {"1", "3"} and all(s["round_p95_ms"] > 0 for s in one["streams"].values())
    assert r["by_tokens_per_frame"]["10"]["chunk_tokens"] > one["chunk_tokens"]
