"""One way to score a video: the live path (``proassist replay`` / ``make demo``: eval/live.py) and
the offline path (``proassist eval``: eval/evaluate.py) both go through ``eval.scoring.score_video``
and count only the spoken reference turns."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from proassist_ros.data.dataset import write_episode
from proassist_ros.data.episode import Episode, EpisodeMeta, TaskSpec, Turn, is_spoken, spoken_references
from proassist_ros.data.schema import T0_NS
from proassist_ros.eval import metrics
from proassist_ros.eval.evaluate import EvalSettings, score_runs
from proassist_ros.eval.live import score_outputs
from proassist_ros.eval.offline import FrameLog, VideoRun
from proassist_ros.eval.outputs import write_run_bag
from proassist_ros.eval.scoring import score_video

REFS = [Turn(1.0, "Boil the water.", "instruction"),
        Turn(2.0, "The time elapsed is 2.0 s. The user boiled water.", "progress_summary"),
        Turn(3.0, "Add the tea bag next.", "answer")]
SAID = [(1.0, "Boil the water."), (3.0, "Add the tea bag next."), (4.5, "Pour the water.")]


def _embed(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for MiniLM: equal texts → cosine 1, different texts → about 0."""
    out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(64) for t in texts])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def fake_embedder(monkeypatch):
    monkeypatch.setattr(metrics, "minilm_embed", _embed)


def _episode() -> Episode:
    def frames():
        for k in range(50):
            yield k / 10, np.full((24, 32, 3), k * 5, np.uint8)

    return Episode(EpisodeMeta("tea", split="test", task_type="make_tea", duration_s=5.0, hz=10.0),
                   TaskSpec("I want tea.", "[Make tea]\n1. Boil water.", ["Boil water."], "make_tea"),
                   references=list(REFS), frames=frames)


def _run(ep: Episode) -> VideoRun:
    """What offline evaluation would hold after the model said SAID (its references: the spoken ones)."""
    said = dict(SAID)
    frames = [FrameLog(k / 2, 0.9 if k / 2 in said else 0.1, k / 2 in said, said.get(k / 2, ""))
              for k in range(10)]
    return VideoRun("tea", "make_tea", "test", 5.0, 0.5, frames=frames,
                    references=[(r.t, r.text, r.kind) for r in spoken_references(ep)])


def test_the_spoken_filter_drops_progress_summaries_only():
    assert [r.kind for r in spoken_references(_episode())] == ["instruction", "answer"]
    assert not is_spoken("progress_summary")
    assert all(is_spoken(k) for k in ("instruction", "correction", "confirmation", "answer", "other"))


def test_live_and_offline_score_a_bag_with_a_summary_identically(tmp_path):
    ep = _episode()
    bag = write_episode(ep, tmp_path / "tea")
    run = _run(ep)
    outputs = write_run_bag(run, tmp_path / "outputs", T0_NS)  # what `ros2 bag record` of the node holds
    settings = EvalSettings(window="default")

    live = score_outputs(bag, outputs, window_s=settings.window_seconds, fps=settings.fps)
    overall, per_video = score_runs([run], settings)

    assert live["overall"] == overall.to_dict()
    assert live["per_video"] == {v: m.to_dict(with_pairs=True) for v, m in per_video.items()}
    assert live["references"] == len(run.references) == 2
    # the summary is neither matched nor missed: both spoken turns were said, one extra utterance
    assert (overall.matched, overall.missed, overall.redundant) == (2, 0, 1)
    assert overall.recall == pytest.approx(1.0)


def test_score_video_is_none_without_spoken_references():
    summary_only = [Turn(2.0, "The user boiled water.", "progress_summary")]
    assert score_video(SAID, summary_only, window_s=(-2.5, 2.5)) is None
    assert score_video(SAID, REFS, window_s=(-2.5, 2.5)).missed == 0
