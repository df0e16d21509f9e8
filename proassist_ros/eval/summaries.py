"""IPS summaries against the bags' ``progress_summary`` references (model card, "Summaries").

Each IPS event of a run (spec §3.1) gives a summary — or none, when P(silence) at the summary
request stays above θ_summary. Reported: how many events there were, the share with a non-empty
summary, and for the non-empty ones the semantic score (the metric's MiniLM cosine,
``eval.metrics.minilm_embed``) against the reference ``progress_summary`` nearest in time,
with three examples. An empty summary scores 0 in ``score_all`` (it names no step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from proassist_ros.eval.offline import VideoRun

Embed = Callable[[list[str]], np.ndarray]


def summary_stats(runs: Sequence[VideoRun], embed: Embed | None = None, examples: int = 3) -> dict:
    """{events, nonempty_share, score_nonempty, score_all, scored, examples}; ``events`` 0 → no
    IPS happened (nothing else is reported)."""
    if embed is None:
        from proassist_ros.eval.metrics import minilm_embed as embed
    events = [(run, f) for run in runs for f in run.frames if f.context_event == "ips"]
    out: dict = {"events": len(events)}
    if not events:
        return out
    said = [(run, f) for run, f in events if f.summary.strip()]
    out["nonempty_share"] = len(said) / len(events)
    pairs = []
    for run, f in said:
        if run.summary_references:
            t_ref, ref = min(run.summary_references, key=lambda r: abs(r[0] - f.t))
            pairs.append((run.video_id, f.t, f.summary.strip(), t_ref, ref))
    with_refs = sum(1 for run, _ in events if run.summary_references)
    out["scored"] = len(pairs)
    if pairs:
        a = embed([p[2] for p in pairs])
        b = embed([p[4] for p in pairs])
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        scores = (a * b).sum(axis=1)
        out["score_nonempty"] = float(scores.mean())
        out["score_all"] = float(scores.sum() / max(with_refs, 1))
        order = np.argsort(-scores)
        pick = [order[len(order) // 2]] if len(order) < 3 else [order[0], order[len(order) // 2], order[-1]]
        out["examples"] = [dict(video=pairs[i][0], t=round(pairs[i][1], 2), summary=pairs[i][2],
                                reference_t=round(pairs[i][3], 2), reference=pairs[i][4],
                                score=round(float(scores[i]), 3)) for i in pick[:examples]]
    return out
