"""`proassist replay` against the real assistant node over DDS, and its agreement with `proassist eval`.

The assistant runs as its own process (`proassist_node`, use_sim_time, a saved tiny model whose
P(silence) varies by frame, θ = 0.5); the replay runs as another (`python -m
proassist_ros.ros.replay`), exactly as a user runs both. The same bag goes through the offline
evaluation (`eval.evaluate.evaluate`), and the two must agree within the stated tolerance:

- the frames that spoke are equal, except at most one frame whose P(speak) lies within 1e-3 of
  the decision boundary 1 − θ (batched offline vision vs one-frame live vision may differ in
  the last float bits; such a frame can flip, nothing else can);
- where both spoke, the texts are equal and P(speak) differs by at most 1e-3;
- with no flipped frame, the metric's matched / missed / redundant counts (and P, R, F1) are
  equal; with one, each count may differ by at most 1.

Live runs can also differ for a reason that is not float noise: the node falling behind (a
frame waits while the previous one is processed: catch-up feeds it silently, a user turn may
enter a frame early). The replay reports that (``live.behind``), and the test fails on it with a
clear message instead of comparing; rate 0.5 keeps the tiny model's slowest frame (a reply with
MiniLM step matching) well inside the 1 s between kept frames on a loaded 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import OutputDrain, wait_until

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.data.schema import T0_NS
from proassist_ros.eval.evaluate import EvalSettings, evaluate
from proassist_ros.eval.live import read_guidance

pytestmark = pytest.mark.dds

THETA = 0.5
RATE = 0.5
REPLY_TOKENS = 6
P_TOL = 1e-3
SECONDS, HZ = 8.0, 10.0
QUESTION = Turn(3.25, "What should I do next?")  # between two kept frames (3.0, 3.5): see replay.py


def _model(directory: Path) -> Path:
    """The tiny model with a scaled random silence row: P(silence) ~1 at most frames, ~0 at some."""
    import torch

    from proassist_ros.model import load, save

    m = load("tiny", chat_format="chatml", tokens_per_frame=1, seed=0)
    with torch.no_grad():
        row = m.llm.lm_head.weight[m.chat.silence_id]
        row.copy_(torch.randn(row.shape, generator=torch.Generator().manual_seed(3)) * 3.0)
    return save(m, directory)


def _episode(references: list[Turn]) -> Episode:
    def frames():
        rng = np.random.default_rng(0)
        for k in range(int(SECONDS * HZ)):
            yield k / HZ, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)

    task = TaskSpec("I want to make a cup of tea.", "[Make tea]\n1. Boil water.\n2. Add the tea bag.",
                    ["Boil water.", "Add the tea bag."], "make_tea", "tea-live")
    return Episode(EpisodeMeta("tea_live", split="test", task_type="make_tea", duration_s=SECONDS, hz=HZ,
                               width=64, height=48),
                   task, user_turns=[QUESTION], references=references, frames=frames)


def _offline(bag: Path, model: Path, out: Path) -> tuple[dict, list]:
    metrics = evaluate([bag], EvalSettings(model=str(model), thetas=[THETA], reply_max_tokens=REPLY_TOKENS),
                       out, show_progress=False, report=False)
    return metrics, read_guidance(out / "outputs" / "tea_live", T0_NS)


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> dict:
    """The bag, the model and the offline result. The references are made from a first offline
    run's own utterances (references are never fed to the model, so the run does not change), so
    the metric has a match, a miss and redundant utterances to agree on."""
    root = tmp_path_factory.mktemp("replay")
    model = _model(root / "model")
    write_episode(_episode([Turn(1.0, "Boil the water first.", "instruction")]), root / "probe_bag",
                  compressed=False, raw=True)
    _, probe = _offline(root / "probe_bag", model, root / "probe_eval")
    assert len(probe) >= 2, f"the model must speak at least twice for a meaningful test: {probe}"
    first = probe[0]
    far = [t / 2 for t in range(int(SECONDS * 2)) if all(abs(t / 2 - u.t) > 3.0 for u in probe)]
    assert far, f"no time 3 s away from every utterance for a reference to miss: {probe}"
    refs = [Turn(round(first.t + 0.5, 3), first.text, "instruction"),
            Turn(far[0], "Now add the tea bag to the cup.", "instruction")]
    bag = write_episode(_episode(refs), root / "bag", compressed=False, raw=True)
    metrics, spoken = _offline(bag, model, root / "eval")
    assert [(u.t, u.text) for u in spoken] == [(u.t, u.text) for u in probe]  # references fed nothing
    return {"root": root, "model": model, "bag": bag, "metrics": metrics, "spoken": spoken}


def _start_node(spawn, model: Path, *extra: str) -> OutputDrain:
    node = OutputDrain(spawn(["-m", "proassist_ros.ros.assistant_node", "--ros-args", "-p", f"model:={model}",
                              "-p", f"theta:={THETA}", "-p", f"reply_max_tokens:={REPLY_TOKENS}",
                              "-p", "use_sim_time:=true", *extra]))
    wait_until(lambda: node.has("active: ") or node.proc.poll() is not None, 120, "the assistant to activate",
               on_timeout=node.text)
    assert node.proc.poll() is None, node.text(200)
    return node


def _replay(spawn, bag: Path, out: Path, *args: str) -> tuple[int, str]:
    """Run `python -m proassist_ros.ros.replay` to completion: (exit status, its output)."""
    proc = spawn(["-m", "proassist_ros.ros.replay", str(bag), "--out", str(out), *args])
    text, _ = proc.communicate(timeout=240)
    return proc.returncode, text


@pytest.mark.slow
def test_live_replay_agrees_with_offline_eval(spawn, offline, tmp_path):
    node = _start_node(spawn, offline["model"])
    rc, text = _replay(spawn, offline["bag"], tmp_path, "--rate", str(RATE))
    assert (tmp_path / "metrics.json").is_file(), f"replay exit {rc}:\n{text}\nnode:\n{node.text()}"
    m = json.loads((tmp_path / "metrics.json").read_text())
    live = m["live"]
    assert not live["behind"], (
        f"the node fell behind (slowest frame {live['slowest_frame_s']:.3f} s, kept frames "
        f"{live['kept_frame_wall_period_s']:.3f} s apart): catch-up makes live and offline differ; "
        f"this machine is too loaded for rate {RATE}")
    assert rc == 0 and m["problems"] == [], f"exit {rc}: {m['problems']}\n{text}"
    off_theta = offline["metrics"]["thetas"][f"{THETA:g}"]
    # every frame reached the node, and it processed exactly the offline run's frames
    assert live["frames_sent"] == live["frames_received"] == int(SECONDS * HZ)
    assert live["frames_processed"] == live["frames_expected"] == off_theta["frames"] == int(SECONDS * 2)
    assert live["task_via"] == "task topic" and live["camera_qos"] == "reliable"
    assert m["node_parameters"]["theta"] == THETA and m["node_parameters"]["use_sim_time"] is True

    # the recorded bag is what was scored: Guidance of the replay's session, on the bag's time base
    got = read_guidance(tmp_path / "outputs", T0_NS, session_id=live["session_id"])
    assert [[u.t, u.text, u.talk_probability] for u in got] == m["predictions"]
    assert all(round(u.t * 2) == u.t * 2 for u in got), "stamps off the 2 FPS grid"
    want = {u.stamp_ns: u for u in offline["spoken"]}
    have = {u.stamp_ns: u for u in got}
    flipped = set(want) ^ set(have)
    for stamp in flipped:
        p = (want.get(stamp) or have.get(stamp)).talk_probability
        assert abs(p - (1 - THETA)) <= P_TOL, (
            f"frame t={(stamp - T0_NS) / 1e9:.1f}: spoke only {'offline' if stamp in want else 'live'} "
            f"with P(speak) {p:.6f}, not at the boundary {1 - THETA}")
    assert len(flipped) <= 1, f"{len(flipped)} frames flipped: {sorted(flipped)}"
    for stamp in set(want) & set(have):
        assert have[stamp].text == want[stamp].text, (have[stamp], want[stamp])
        assert abs(have[stamp].talk_probability - want[stamp].talk_probability) <= P_TOL

    off, on = off_theta["overall"], m["overall"]
    assert off["matched"] >= 1 and off["missed"] >= 1 and off["redundant"] >= 1, off  # a meaningful test
    keys = ("matched", "missed", "redundant", "matched_before_filter")
    if flipped:
        assert all(abs(on[k] - off[k]) <= 1 for k in keys), (on, off)
    else:
        assert {k: on[k] for k in keys} == {k: off[k] for k in keys}
        assert on["precision"] == pytest.approx(off["precision"]) and on["f1"] == pytest.approx(off["f1"])
        pairs = [[(p["pred_text"], p["ref_index"], p["correct"], p["time_diff"])
                  for p in r["per_video"]["tea_live"]["pairs"]] for r in (m, off_theta)]
        assert pairs[0] == pairs[1]
    summary = f"(matched {on['matched']}, missed {on['missed']}, redundant {on['redundant']})"
    assert summary in text and "WARNING" not in text, text


@pytest.mark.slow
def test_sample_bag_live_at_1x_keeps_up_and_times_its_stages(spawn, offline, tmp_path):
    """A shipped sample bag (65 s of JPEG frames) replayed at 1x, as `make demo` plays one, to the
    node with the tiny model: every frame reaches it (none lost around the camera's auto-QoS
    re-subscription), every kept frame is processed, and the run's slowest frame comes with its
    stages from the node's stats (runtime/stages.py)."""
    from proassist_ros.runtime.stages import STAGES

    bag = Path(__file__).resolve().parents[1] / "samples" / "test_0005_assemble_lamp"
    node = _start_node(spawn, offline["model"], "-p", "transport:=compressed")
    rc, text = _replay(spawn, bag, tmp_path, "--rate", "1")
    assert (tmp_path / "metrics.json").is_file(), f"replay exit {rc}:\n{text}\nnode:\n{node.text()}"
    live = json.loads((tmp_path / "metrics.json").read_text())["live"]
    assert live["frames_sent"] == live["frames_received"] > 0, live
    assert live["frames_processed"] == live["frames_expected"] == 131, live  # 65.5 s at 2 FPS
    stages = live["slowest_frame_stages_s"]
    assert list(stages) == list(STAGES) and stages["vision"] > 0 and stages["decision"] > 0, stages
    assert 0 < sum(stages.values()) <= live["slowest_frame_s"] + 1e-3, live
    assert live["slowest_stage"] in STAGES and live["slowest_frame"].split(":")[0].endswith(" s"), live


def test_replay_without_nodes_fails_clearly(spawn, offline, tmp_path):
    rc, text = _replay(spawn, offline["bag"], tmp_path, "--timeout-s", "2")
    assert rc == 2 and "the assistant's TaskState on /proassist/task_state" in text, text
    assert not (tmp_path / "metrics.json").exists()


def test_replay_rejects_bad_input_before_dds(offline, tmp_path, capsys):
    from proassist_ros.ros.replay import main

    with pytest.raises(ValueError, match="no proassist_ros/msg/Guidance topic /proassist/guidance"):
        read_guidance(offline["bag"], T0_NS)  # the input bag: its references are not outputs
    assert main([str(tmp_path / "missing_bag")]) == 2
    assert "bag not found" in capsys.readouterr().err
    assert main([str(tmp_path), "--rate", "0"]) == 2
    assert "--rate" in capsys.readouterr().err
