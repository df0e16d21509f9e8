"""`proassist eval` end to end on real bags with the tiny model: outputs, errors, sharding."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from proassist_ros.data.bags import read_bag, typestore
from proassist_ros.data.dataset import write_episode
from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.eval.cli import main
from proassist_ros.runtime.sampling import sampled_frames

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000 * 10**9


def episode(video_id: str, seconds: float = 6.0, hz: float = 10.0, refs: bool = True, seed: int = 0) -> Episode:
    def frames():
        rng = np.random.default_rng(seed)
        for k in range(int(seconds * hz)):
            yield k / hz, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)

    references = [Turn(1.0, "Boil the water.", "instruction"), Turn(3.0, "Add the tea bag next.", "answer")]
    return Episode(EpisodeMeta(video_id, split="test", task_type="make_tea", duration_s=seconds, hz=hz,
                               width=64, height=48),
                   TaskSpec("I want tea.", "[Make tea]\n1. Boil water.\n2. Add the bag.",
                            ["Boil water.", "Add the bag."], "make_tea"),
                   user_turns=[Turn(2.05, "What next?")], references=references if refs else [],
                   frames=frames)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bags")
    write_episode(episode("tea_a", seed=0), root / "a")
    write_episode(episode("tea_b", seed=1, seconds=4.0), root / "b")
    write_episode(episode("own_recording", refs=False, seed=2), root / "c")
    return root


ARGS = ["--model", "tiny", "--reply-max-tokens", "4", "--no-report"]


def test_eval_writes_metrics_output_bags_and_selected_theta(bags, tmp_path, capsys):
    out, params = tmp_path / "out", tmp_path / "sel" / "theta.yaml"
    assert main([str(bags), *ARGS, "--sweep", "0.2:0.6:0.2", "--out", str(out),
                 "--select-theta", str(params)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["thetas"]) == ["0.2", "0.4", "0.6"]
    assert m["metrics_skipped"] == ["own_recording"]
    assert "metrics skipped" in capsys.readouterr().out
    sel = m["theta_selected"]
    assert yaml.safe_load(params.read_text())["/**"]["ros__parameters"]["theta"] == sel
    best = m["thetas"][f"{sel:g}"]
    # counts are consistent: every reference is matched or missed, every prediction matched or redundant
    per_video = best["per_video"]
    assert set(per_video) == {"tea_a", "tea_b"}
    o = best["overall"]
    assert o["matched_before_filter"] + o["missed"] == 4
    assert o["matched_before_filter"] + o["redundant"] == sum(
        len(v["pairs"]) + len(v["redundant_preds"]) for v in per_video.values())
    assert {"silent", "rule"} <= set(m["baselines"]) and m["baselines"]["silent"]["recall"] == 0.0
    # a 6 s bag at 10 Hz gives 12 frames on the 2 FPS stamp grid; the 4 s one 8
    assert best["frames"] == 12 + 8 + 12
    # output bags: on the input's time base, one Guidance per predicted utterance, also for the
    # bag without references
    for vid in ("tea_a", "tea_b", "own_recording"):
        msgs = list(read_bag(out / "outputs" / vid))
        topics = {x.topic for x in msgs}
        assert "/proassist/task_state" in topics
        guid = [typestore().deserialize_cdr(x.raw, x.msgtype) for x in msgs if x.topic == "/proassist/guidance"]
        for g in guid:
            ns = g.header.stamp.sec * 10**9 + g.header.stamp.nanosec
            assert (ns - T0) % (5 * 10**8) == 0 and T0 <= ns < T0 + 6 * 10**9
            assert g.threshold == pytest.approx(sel)
    n_pred = sum(1 for x in read_bag(out / "outputs" / "tea_a") if x.topic == "/proassist/guidance")
    assert n_pred == len(per_video["tea_a"]["pairs"]) + len(per_video["tea_a"]["redundant_preds"])


def test_sampling_is_the_nodes_stamp_grid(bags):
    from proassist_ros.data.dataset import read_episode

    ts = [t for t, _ in sampled_frames(read_episode(bags / "a"), 2.0, T0)]
    assert ts == pytest.approx([0.5 * k for k in range(12)])


def test_sampling_decodes_only_the_kept_frames(bags, monkeypatch):
    """The fps gate runs before JPEG/raw decoding: a 1 FPS pass over a 2 FPS bag decodes half."""
    import proassist_ros.data.images as images
    from proassist_ros.data.dataset import read_episode

    real, decoded = images.image_to_rgb, []
    monkeypatch.setattr(images, "image_to_rgb", lambda msg: decoded.append(1) or real(msg))
    kept = [t for t, _ in sampled_frames(read_episode(bags / "a"), 1.0, T0)]
    assert kept == pytest.approx([1.0 * k for k in range(6)])
    assert len(decoded) == len(kept)


def test_bag_without_camera_and_unknown_storage_fail_clearly(bags, tmp_path, capsys):
    ep = episode("x")
    ep.frames = None
    no_cam = tmp_path / "no_camera"
    shutil.copytree(bags / "a", no_cam)
    # rewrite: a bag holding only text topics
    shutil.rmtree(no_cam)
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = typestore()
    with Writer(no_cam, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/proassist/user_utterance", "std_msgs/msg/String", typestore=ts)
        w.write(c, T0, ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
    assert main([str(no_cam), *ARGS, "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err
    assert "camera" in err and str(no_cam) in err

    weird = tmp_path / "weird"
    shutil.copytree(bags / "a", weird)
    meta = weird / "metadata.yaml"
    meta.write_text(meta.read_text().replace("storage_identifier: mcap", "storage_identifier: foo"))
    assert main([str(weird), *ARGS, "--out", str(tmp_path / "o2")]) == 2
    assert "foo" in capsys.readouterr().err

    assert main([str(tmp_path / "missing"), *ARGS, "--out", str(tmp_path / "o3")]) == 2
    assert "missing" in capsys.readouterr().err


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in ("llm_s", "vision_s", "wall_s", "processes")}
    if isinstance(d, list):
        return [_strip(x) for x in d]
    return d


def test_two_processes_equal_one(bags, tmp_path):
    """torchrun --nproc_per_node 2 (gloo on the CPU): bags sharded, results merged, identical."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([str(bags), *ARGS, "--theta", "0.5", "--out", str(one)]) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    with socket.socket() as sock:  # a free port for the rendezvous (torchrun has no "any port")
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                           "--master_port", str(port), "-m", "proassist_ros.eval.cli", str(bags), *ARGS,
                           "--theta", "0.5", "--out", str(two)],
                          capture_output=True, text=True, timeout=280, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert b["processes"] == 2 and a["processes"] == 1
    # Identical runs (utterances, times, counts); similarity scores agree to float precision only,
    # because torchrun runs each rank with OMP_NUM_THREADS=1 and the sentence embedder's sums
    # then round differently.
    _same(_strip(a), _strip(b))


def _same(x, y, path="metrics"):
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), path
        for k in x:
            _same(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), path
        for i, (u, v) in enumerate(zip(x, y)):
            _same(u, v, f"{path}[{i}]")
    elif isinstance(x, float) and not isinstance(x, bool):
        assert y == pytest.approx(x, rel=1e-5, abs=1e-6), path  # fp32 embeddings
    else:
        assert x == y, path


def test_ips_summaries_are_reported_against_the_nearest_progress_summary(tmp_path):
    ep = episode("tea_ips", seconds=12.0, seed=3)
    ep.references.append(Turn(6.0, "So far they boiled the water. They are now adding the bag.", "progress_summary"))
    write_episode(ep, tmp_path / "bag")
    out = tmp_path / "out"
    assert main([str(tmp_path / "bag"), *ARGS, "--theta", "0.5", "--context-limit", "96", "--out", str(out)]) == 0
    s = json.loads((out / "metrics.json").read_text())["summaries"]
    assert s["events"] >= 1, s
    assert 0.0 <= s["nonempty_share"] <= 1.0
    if s["nonempty_share"]:  # a random tiny LLM may say nothing at the summary request
        assert s["scored"] >= 1 and s["examples"][0]["reference_t"] == 6.0
