"""eval/summaries.py: IPS events, the share with a summary, and the score against the nearest
progress_summary reference (the metric's MiniLM)."""

from __future__ import annotations

import pytest

from proassist_ros.eval.offline import FrameLog, VideoRun
from proassist_ros.eval.summaries import summary_stats

REF_A = "So far they have opened the pill box and filled the glass. They are now putting a pill on the saucer."
REF_B = "So far they have opened the pill box, filled the glass and taken the pill. They are now closing the box."


def _run(summaries: dict[float, str], refs=((30.0, REF_A), (60.0, REF_B))) -> VideoRun:
    frames = [FrameLog(t / 2, 0.1) for t in range(0, 160)]
    for f in frames:
        if f.t in summaries:
            f.context_event, f.summary = "ips", summaries[f.t]
    return VideoRun("v", "take_medicine", "test", 80.0, 0.3, frames=frames, summary_references=list(refs))


def test_no_ips_reports_only_zero_events():
    assert summary_stats([_run({})]) == {"events": 0}


def test_nearest_reference_scores_the_summary():
    good = "They have opened the pill box and filled the glass; now a pill goes on the saucer."
    stats = summary_stats([_run({31.0: good, 58.0: ""})])
    assert stats["events"] == 2 and stats["nonempty_share"] == 0.5 and stats["scored"] == 1
    assert stats["examples"][0]["reference"] == REF_A and stats["examples"][0]["reference_t"] == 30.0
    assert stats["score_nonempty"] > 0.6
    assert stats["score_all"] == pytest.approx(stats["score_nonempty"] / 2)  # the empty one scores 0
    off = summary_stats([_run({31.0: "The weather is sunny and the train leaves at noon."})])
    assert off["score_nonempty"] < stats["score_nonempty"] - 0.3
    assert len(summary_stats([_run({10.0: good, 31.0: good, 58.0: good, 70.0: good})])["examples"]) == 3
