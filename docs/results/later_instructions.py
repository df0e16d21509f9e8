"""Recall of *later* instructions (those after a video's first instruction: said after a step was
seen to end) from a finished ``proassist eval`` run: its output bags against the test bags.

    python docs/results/later_instructions.py data/test runs/eval_test/outputs [--out FILE]

The model card's "later instructions" row (issue 16's target ≥ 0.5). Same metric as ``proassist
eval`` (``eval.scoring.score_video``, the default window and fps); a reference counts when its
pair passes the semantic filter.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from proassist_ros.constants import GUIDANCE_TOPIC, NS_PER_S
from proassist_ros.data.bags import connection_messages, open_bag
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.episode import is_spoken
from proassist_ros.eval.metrics import window_for
from proassist_ros.eval.scoring import score_video


def predictions(out_bag: Path, t0_ns: int) -> list[tuple[float, str]]:
    with open_bag(out_bag) as reader:
        conns = [c for c in reader.connections if c.topic == GUIDANCE_TOPIC]
        said = []
        for conn, _, raw in connection_messages(reader, conns):
            msg = reader.deserialize(raw, conn.msgtype)
            said.append(((msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec - t0_ns) / NS_PER_S, msg.text))
    return sorted(said)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("test_dir", type=Path)
    ap.add_argument("outputs", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    counts = {"first": [0, 0], "later": [0, 0]}
    for bag in sorted(p for p in args.test_dir.iterdir() if p.is_dir()):
        episode, t0_ns = read_episode_base(bag)
        out = args.outputs / episode.meta.video_id
        if not out.is_dir():
            continue
        result = score_video(predictions(out, t0_ns), episode.references, window_s=window_for("default"))
        if result is None:
            continue
        spoken = [r for r in episode.references if is_spoken(r.kind)]  # what ref_index points into
        instr = [j for j, r in enumerate(spoken) if r.kind == "instruction"]
        first = min(instr, key=lambda j: spoken[j].t) if instr else None
        hit = {p.ref_index for p in result.pairs if p.correct}
        for j in instr:
            which = "first" if j == first else "later"
            counts[which][1] += 1
            counts[which][0] += j in hit
    report = {k: {"matched": m, "references": n, "recall": m / n if n else None} for k, (m, n) in counts.items()}
    print(json.dumps(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
