"""Prompt-lookup replies (EngineConfig.reply_lookahead): the same replies, in how much time?

Runs the shipped model (int8, the CPU default) over the 4 sample bags with lookahead 0 and the
default, alternating rounds in one process, and reports per setting: the time spent in reply
forwards (the tokens after the decision), the number of reply forwards and rows fed, and whether
every bag's predictions are identical. Usage (from the repository root):

    python docs/results/lookahead/lookahead_check.py [--rounds 2] [--out docs/results/lookahead/lookahead_check.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from proassist_ros.eval.evaluate import EvalSettings, run_bags
from proassist_ros.model import lookup, streaming


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="docs/results/lookahead/lookahead_check.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    bags = sorted(Path("samples").glob("test_*"))
    real = streaming.forward_chunk
    acc = {"s": 0.0, "forwards": 0, "rows": 0}

    def timed(model, state, ids, frame_feats=None, keep=None):
        if frame_feats is not None or keep is not None:  # a frame, a turn: not a reply forward
            return real(model, state, ids, frame_feats, keep)
        t0 = time.perf_counter()
        out = real(model, state, ids, frame_feats, keep)
        acc["s"] += time.perf_counter() - t0
        acc["forwards"] += 1
        acc["rows"] += len(ids)
        return out

    streaming.forward_chunk = timed
    settings = (0, lookup.DRAFT_MAX)
    runs: dict[int, list[dict]] = {k: [] for k in settings}
    preds: dict[int, list] = {}
    for _ in range(args.rounds):
        for k in settings:
            acc.update(s=0.0, forwards=0, rows=0)
            rows = run_bags(bags, EvalSettings(reply_lookahead=k), "embedded", show_progress=False)
            preds[k] = [r["run"]["predictions"] for r in rows]
            runs[k].append(dict(acc))
            print(k, acc, flush=True)
    same = preds[0] == preds[lookup.DRAFT_MAX]
    out = {"bags": [str(b) for b in bags], "rounds": args.rounds, "identical_predictions": same,
           "ngram": [lookup.NGRAM_MIN, lookup.NGRAM_MAX], "runs": {str(k): v for k, v in runs.items()},
           "reply_time_ratio": [a["s"] / b["s"] for a, b in zip(runs[0], runs[lookup.DRAFT_MAX])]}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}))


if __name__ == "__main__":
    main()
