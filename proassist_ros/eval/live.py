"""Scoring a live replay: the recorded Guidance of the running nodes against the bag's references.

``proassist replay`` (ros/replay.py) plays a dataset bag to the nodes and records their outputs
into a bag; this module reads that recording back and scores it exactly as ``proassist eval``
scores an offline run (``eval.scoring.score_video``: the spoken references only, times relative
to the input bag's t0), so the two paths' numbers are comparable key for key. It also works on a
user's own ``ros2 bag record`` of /proassist/guidance made while playing a dataset bag.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from proassist_ros.constants import GUIDANCE_TOPIC, NS_PER_S
from proassist_ros.data.bags import connection_messages, open_bag
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.episode import spoken_references
from proassist_ros.eval.content import vocabulary_for
from proassist_ros.eval.metrics import aggregate
from proassist_ros.eval.scoring import NOT_SCORED_REASON, score_video
from proassist_ros.runtime.sampling import FpsGate

GUIDANCE_TYPE = "proassist_ros/msg/Guidance"
# Outputs are read from GUIDANCE_TOPIC, never /proassist/reference: the references share the type.


@dataclass(frozen=True)
class LiveUtterance:
    """One recorded Guidance, on the input bag's time base."""

    t: float                  # stream seconds (header stamp − t0)
    stamp_ns: int
    text: str
    talk_probability: float
    session_id: str
    seq: int
    latency_s: float


def expected_frames(stamps_ns: Iterable[int], fps: float) -> int:
    """How many of these camera stamps the node's 2 FPS gate keeps (grid anchored at the first)."""
    gate = FpsGate(fps)
    return sum(gate.offer(s) for s in stamps_ns)


def read_guidance(outputs: Path, t0_ns: int, topic: str = GUIDANCE_TOPIC,
                  session_id: str | None = None) -> list[LiveUtterance]:
    """The Guidance messages on ``topic`` of a recording, in stamp order (one session if given).

    Raises ValueError when the recording has no Guidance on ``topic`` (a wrong file or topic).
    """
    out: list[LiveUtterance] = []
    with open_bag(outputs) as reader:
        conns = [c for c in reader.connections if c.topic == topic and c.msgtype == GUIDANCE_TYPE]
        if not conns:  # a topic without messages is fine: the assistant stayed silent
            raise ValueError(f"{outputs}: no {GUIDANCE_TYPE} topic {topic}")
        for conn, _, raw in connection_messages(reader, conns):
            g = reader.deserialize(raw, conn.msgtype)
            if session_id is not None and g.session_id != session_id:
                continue
            ns = g.header.stamp.sec * NS_PER_S + g.header.stamp.nanosec
            out.append(LiveUtterance((ns - t0_ns) / NS_PER_S, ns, g.text, float(g.talk_probability),
                                     g.session_id, int(g.seq), float(g.latency_s)))
    return sorted(out, key=lambda u: (u.stamp_ns, u.seq))


def score_outputs(input_bag: Path, outputs: Path, *, window_s: tuple[float, float], fps: float = 2.0,
                  topic: str = GUIDANCE_TOPIC, session_id: str | None = None,
                  camera_topic: str | None = None) -> dict:
    """metrics.json's scoring part for one replayed bag (keys as ``proassist eval``'s per-θ dict).

    ``overall`` / ``per_video`` are ``MatchResult.to_dict()``; None / {} when the bag has no
    spoken references (nothing to score, as eval's ``metrics_skipped``).
    """
    episode, t0_ns = read_episode_base(input_bag, camera_topic)
    utts = read_guidance(outputs, t0_ns, topic, session_id)
    vid = episode.meta.video_id
    vocabulary, content_note = vocabulary_for(episode)  # the content-exact F1 (task-world bags only)
    result = score_video([(u.t, u.text) for u in utts], episode.references, window_s=window_s, fps=fps,
                         vocabulary=vocabulary)
    per_video = {vid: result} if result is not None else {}
    return {
        "video_id": vid,
        "t0_ns": t0_ns,
        "references": len(spoken_references(episode)),
        "metrics_skipped": [] if per_video else [vid],
        "scored": bool(per_video),
        **({} if per_video else {"not_scored_reason": NOT_SCORED_REASON}),
        "overall": aggregate(list(per_video.values())).to_dict() if per_video else None,
        "per_video": {v: r.to_dict(with_pairs=True) for v, r in per_video.items()},
        **({"content_note": content_note} if vocabulary is None else {}),
        "utterances": len(utts),
        "predictions": [[u.t, u.text, u.talk_probability] for u in utts],
    }
