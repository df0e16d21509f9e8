"""A/B of the int8 kernels in one process: silent frame step (vision + LLM) at ~100 and ~1000 tokens, reply token at 100 / 800."""
import torch, time, numpy as np, json
torch.set_num_threads(1)
from proassist_ros.model import load, int8_kernel
from proassist_ros.eval.bench_keys import session, frame_cycle, _fill, reply_ms_per_token
from proassist_ros.model.loader import default_settings
m = load("embedded", quantize="int8")
d = default_settings("embedded")
frames = frame_cycle(40)
res = {}
for rnd in range(2):
  for kern in ("native", "torch"):
    int8_kernel.use(kern)
    for ctx in (100, 1000):
        s = session(m, d, 4096, theta=1e-6)
        t = _fill(s, frames, ctx, 0.0)
        tot = []
        for i in range(20):
            t0 = time.perf_counter(); s.push_frame(frames[i % 40], t + 0.5 * (i + 1)); tot.append(time.perf_counter() - t0)
        res.setdefault(f"silent_{ctx}_{kern}", []).append(round(1e3 * float(np.median(tot)), 1))
    for ctx in (100, 800):
        res.setdefault(f"token_{ctx}_{kern}", []).append(round(reply_ms_per_token(m, ctx, 20)["ms_per_token"], 1))
int8_kernel.use("native")
print(json.dumps(res, indent=1))
