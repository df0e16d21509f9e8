"""``proassist synth --audio``: the user turns spoken into the bag, and heard back by eval --asr
at the times they were said."""

from __future__ import annotations

import pytest

from proassist_ros.cli import main
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.speech.dataset_audio import read_bag_audio, spoken_turns


@pytest.fixture(scope="module")
def spoken_bag(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--videos", "1", "--split", "test", "--seed", "2026",
                 "--compressed", "--audio", "--workers", "1", "--size", "160x120"]) == 0
    return next(p for p in out.iterdir() if p.is_dir())


def test_synth_audio_holds_each_turn_at_its_time(spoken_bag):
    ep, t0 = read_episode_base(spoken_bag)
    track = read_bag_audio(spoken_bag, t0)
    assert track is not None and ep.user_turns
    for turn in ep.user_turns:  # speech starts at the turn's time, silence just before it
        i = int(turn.t * 16000)
        assert abs(track[max(0, i - 1600):i]).max() < 200, turn
        assert abs(track[i:i + 16000]).max() > 3000, turn


def test_eval_asr_hears_the_turns_where_they_were_said(spoken_bag):
    ep, t0 = read_episode_base(spoken_bag)
    heard = spoken_turns(ep, spoken_bag, t0)
    assert heard.audio == "bag" and heard.words > 0
    assert len(heard.turns) == len(ep.user_turns)
    for said, got in zip(sorted(ep.user_turns, key=lambda u: u.t), heard.turns, strict=True):
        assert abs(got.t - said.t) < 0.15, (said, got)
    assert heard.errors < heard.words  # one bag is noisy; the split-wide WER is in docs/speech.md


def test_a_bag_without_audio_has_none(tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "samples" / "test_0004_take_medicine"
    _, t0 = read_episode_base(sample)
    assert read_bag_audio(sample, t0) is None
