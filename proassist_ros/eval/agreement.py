"""Teacher-forced agreement of a quantized LLM with fp32: does int8 decide alike *on the same history*?

Why teacher-forced: free-running, greedy decoding diverges at the first near-tie (often the
opener of the first reply) and the two runs then see different histories, so comparing their
transcripts measures chaos, not quantization (docs/performance.md, "int8"). Here an fp32 session
runs over the bags as the node would; every call into its LLM (frames, turns, reply tokens, IPS)
is replayed on the quantized copy, which keeps a cache of its own (reset whenever the session
starts a new one). Per call: whether the next-token argmax agrees, |ΔP(silence)| at the call's
last position, and whether P(silence) falls on the same side of θ.

``python -m proassist_ros.eval.agreement BAG... [--quantize int8] [--model embedded]``
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from proassist_ros.model import decode
from proassist_ros.model.kv_cache import new_kv_cache


@dataclass
class Agreement:
    calls: int = 0
    argmax_agree: int = 0
    theta_side_agree: int = 0
    max_abs_dp_silence: float = 0.0

    def summary(self) -> dict:
        n = max(self.calls, 1)
        return {**asdict(self), "argmax_agreement": self.argmax_agree / n,
                "decision_agreement": self.theta_side_agree / n}


def teacher_forced(model, quantized_llm, run, theta: float) -> Agreement:
    """Run ``run()`` (which drives sessions of ``model``) while replaying each LLM call on
    ``quantized_llm``; returns the agreement counts."""
    stats, shadow = Agreement(), {"src": None, "cache": None}
    silence = model.chat.silence_id

    def hook(_module, args, kwargs, out):
        src = kwargs.get("cache", kwargs.get("past_key_values"))
        if src is not shadow["src"] or shadow["cache"] is None:  # the session started a new cache
            shadow["src"], shadow["cache"] = src, new_kv_cache(quantized_llm.config)
        with torch.no_grad():  # the path the node takes (lean forward, fused int8 decode)
            q = decode.logits(quantized_llm, kwargs["inputs_embeds"], shadow["cache"], kwargs["position_ids"],
                              kwargs.get("logits_to_keep"))[0, -1].float()
        ref = out.logits[0, -1].float()
        p_ref, p_q = (torch.softmax(x, -1)[silence].item() for x in (ref, q))
        stats.calls += 1
        stats.argmax_agree += int(ref.argmax() == q.argmax())
        stats.theta_side_agree += int((p_ref > theta) == (p_q > theta))
        stats.max_abs_dp_silence = max(stats.max_abs_dp_silence, abs(p_ref - p_q))

    handle = model.llm.register_forward_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return stats


def main(argv: list[str] | None = None) -> int:
    from proassist_ros.data.dataset_read import read_episode
    from proassist_ros.engine import EngineConfig
    from proassist_ros.engine.config import model_settings
    from proassist_ros.eval.offline import run_episode
    from proassist_ros.model import load
    from proassist_ros.model.loader import default_settings
    from proassist_ros.model.quantize import quantize_llm

    p = argparse.ArgumentParser(prog="python -m proassist_ros.eval.agreement", description=__doc__.split("\n")[0])
    p.add_argument("bags", nargs="+", type=Path)
    p.add_argument("--model", default="embedded")
    p.add_argument("--quantize", default="int8", choices=("int8",))
    p.add_argument("--theta", type=float, default=-1.0, help="θ (< 0: the model's own)")
    p.add_argument("--out", type=Path, help="write the result as JSON here")
    args = p.parse_args(argv)
    model = load(args.model)
    quantized = quantize_llm(copy.deepcopy(model.llm), args.quantize)
    cfg = EngineConfig(**model_settings(args.theta, 0, default_settings(args.model), "ips"))
    episodes = [read_episode(b) for b in args.bags]
    stats = teacher_forced(model, quantized, lambda: [run_episode(model, e, cfg) for e in episodes], cfg.theta)
    result = {"model": args.model, "quantize": args.quantize, "theta": cfg.theta,
              "bags": [str(b) for b in args.bags], **stats.summary()}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
