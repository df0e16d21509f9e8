"""`make bench QUICK=1` writes every key of bench/results/summary.json (issue 17, item 1).

The bench runs here on the tiny model at reduced size (a few frames, a 5-second slice of one
sample bag, the ROS end-to-end run at 4x); the numbers are the tiny model's, so only their types
and properties that hold for any model are checked. `make bench` itself never runs in `make test`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from proassist_ros.eval import bench_summary as bs

REPO = Path(__file__).resolve().parents[1]


def test_make_bench_quick_passes_quick_and_make_test_does_not_bench():
    dry = subprocess.run(["make", "-n", "bench", "QUICK=1"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "proassist bench --quick" in dry.stdout
    full = subprocess.run(["make", "-n", "bench"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "--quick" not in full.stdout
    test = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "bench" not in test.stdout


def test_docs_table_is_refreshed_between_markers(tmp_path):
    doc = tmp_path / "perf.md"
    doc.write_text(f"# x\n\n## Benchmark summary\n\n{bs.START}\nold\n{bs.END}\n\n## after\n")
    summary = {k: 1.5 for k in bs.KEYS} | {"ros_e2e_p50_s": None, "notes": {"ros_e2e_p50_s": "why"},
                                           "quick": True, "date": "d", "wall_s": 3.0, "model": {"spec": "tiny"},
                                           "machine": {"cpu_model": "cpu", "usable_cores": 2, "torch_threads": 1}}
    assert bs.refresh_docs(doc, summary)
    text = doc.read_text()
    assert "old" not in text and text.endswith(f"{bs.END}\n\n## after\n")
    assert "| `ros_e2e_p50_s` | null |" in text and "why" in text
    assert all(f"`{k}`" in text for k in bs.KEYS)
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    assert not bs.refresh_docs(plain, summary) and plain.read_text() == "# no markers\n"


@pytest.mark.slow
@pytest.mark.dds
@pytest.mark.timeout(900)
def test_bench_quick_writes_every_key(tmp_path):
    out = tmp_path / "summary.json"
    cmd = [sys.executable, "-m", "proassist_ros.cli", "bench", "--quick", "--model", "tiny",
           "--output", str(tmp_path / "bench_output"), "--summary", str(out), "--frames", "4",
           "--hour-frames", "40", "--reply-max-tokens", "8", "--quality-max-s", "5",
           "--ros-bag", "test_0005_assemble_lamp", "--ros-rate", "4"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads(out.read_text())
    assert (tmp_path / "bench_output" / "bench.png").is_file()  # the plots still come out
    assert s["quick"] is True and s["model"]["spec"] == "tiny"
    assert {"cpu_model", "cpu_cores", "usable_cores", "torch_threads"} <= set(s["machine"])
    for key in bs.KEYS:
        assert key in s, key
        v = s[key]
        if v is None:
            assert s["notes"].get(key), f"{key} is null without a note"
        else:
            assert isinstance(v, float) and math.isfinite(v), (key, v)
    # properties that hold for any model, so they can fail on a broken measurement
    assert s["kv_speedup_3500"] > s["kv_speedup_1000"] > 1.0  # recompute grows with the context
    assert s["realtime_factor_silent_100"] > s["realtime_factor_speaking"] > 0  # a reply costs tokens
    assert 0.0 <= s["decision_agreement_int8"] <= 1.0
    assert 0.5 < s["rss_ratio_last_first"] < 2.0
    assert s["ips_stall_s"] is not None and s["ips_stall_s"] > 0  # the tiny model summarises at QUICK_IPS_LIMIT
    if s["ros_e2e_p50_s"] is not None:
        assert 0 < s["ros_e2e_p50_s"] <= s["ros_e2e_p95_s"] < 30
        e2e = s["details"]["ros_e2e"]
        assert e2e["guidance_messages"] > 0
        # the node's own share, from each Guidance's latency_s: one per message, non-negative
        assert len(e2e["node_latency_s"]) == len(e2e["e2e_s"]) == e2e["guidance_messages"]
        assert min(e2e["node_latency_s"]) >= 0 and e2e["node_latency_p50_s"] >= 0
