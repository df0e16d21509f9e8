"""Issue 10/14's shipped-model test on every sample bag: of the step completions (the facts'
``t_end``) that a reference instruction follows within 3 s, how many did the model speak within
2 s after? Offline (``eval.offline.run_episode``), the model's own settings, greedy; fp32 and int8.

    python docs/results/step_completions.py --out docs/results/embedded_v6/step_completions.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.engine import EngineConfig
from proassist_ros.engine.config import model_settings
from proassist_ros.eval.offline import run_episode
from proassist_ros.model import load
from proassist_ros.model.loader import default_settings

WINDOW_S, FOLLOW_S = 2.0, 3.0  # as test/test_shipped_model.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bags", nargs="+", default=sorted(str(p) for p in Path("samples").glob("test_*")))
    args = ap.parse_args()
    cfg = EngineConfig(**model_settings(-1.0, 0, default_settings("embedded"), "ips"))
    runs = {}
    for quantize in ("none", "int8"):
        model = load("embedded", quantize=quantize)
        for bag in args.bags:
            episode, t0_ns = read_episode_base(bag)
            run = run_episode(model, episode, cfg, t0_ns=t0_ns)
            instructions = [t for t, _, kind in run.references if kind == "instruction"]
            ends = [float(s["t_end"]) for s in episode.meta.extra["steps"]]
            ends = [e for e in ends if any(e <= r <= e + FOLLOW_S for r in instructions)]
            spoken = [t for t, _ in run.predictions]
            caught = [e for e in ends if any(e <= t <= e + WINDOW_S for t in spoken)]
            after = [min((t - e for t in spoken if t >= e), default=None) for e in ends]
            key = f"{'fp32' if quantize == 'none' else 'int8'}/{Path(bag).name}"
            runs[key] = {"completions_with_instruction": len(ends), "caught": len(caught),
                         "t_end": ends, "spoken_at": spoken,
                         "first_utterance_after_t_end_s": [None if a is None else round(a, 2) for a in after]}
            print(key, f"{len(caught)} / {len(ends)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "theta": cfg.theta, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
