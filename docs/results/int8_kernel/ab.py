"""In-process A/B on the embedded int8 model, alternating rounds (docs/performance.md):

    python docs/results/int8_kernel/ab.py kernel   # native int8 kernel vs torch's packed one -> ab_check.json
    python docs/results/int8_kernel/ab.py lean     # lean forward (model/decode.py) vs transformers' -> ab_lean.json
    python docs/results/int8_kernel/ab.py fused    # fused decode (model/fused_decode.py) vs lean -> ab_fused.json

Silent frame step (vision + LLM) at ~100 and ~1000 tokens, reply token at 100 / 800; medians in ms.
"""
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
from proassist_ros.eval.bench_keys import _fill, frame_cycle, reply_ms_per_token, session  # noqa: E402
from proassist_ros.model import decode, fused_decode, int8_kernel, load  # noqa: E402
from proassist_ros.model.loader import default_settings  # noqa: E402

_lean = decode.supported
SETUPS = {  # label -> how to switch it on
    "kernel": {"native": lambda: int8_kernel.use("native"), "torch": lambda: int8_kernel.use("torch")},
    "lean": {"lean": lambda: setattr(decode, "supported", _lean),
             "transformers": lambda: setattr(decode, "supported", lambda *a: False)},
    "fused": {"fused": lambda: fused_decode.enable(True), "lean": lambda: fused_decode.enable(False)},
}

m = load("embedded", quantize="int8")
d = default_settings("embedded")
frames = frame_cycle(40)
res = {}
for _ in range(2):
    for label, switch in SETUPS[sys.argv[1]].items():
        switch()
        for ctx in (100, 1000):
            s = session(m, d, 4096, theta=1e-6)
            t = _fill(s, frames, ctx, 0.0)
            tot = []
            for i in range(20):
                t0 = time.perf_counter()
                s.push_frame(frames[i % 40], t + 0.5 * (i + 1))
                tot.append(time.perf_counter() - t0)
            res.setdefault(f"silent_{ctx}_{label}", []).append(round(1e3 * float(np.median(tot)), 1))
        for ctx in (100, 800):
            res.setdefault(f"token_{ctx}_{label}", []).append(round(reply_ms_per_token(m, ctx, 20)["ms_per_token"], 1))
int8_kernel.use("native")
decode.supported = _lean
fused_decode.enable(True)
print(json.dumps(res, indent=1))
