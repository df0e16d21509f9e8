"""A/B of the lean forward (model/decode.py) against transformers' forward, one process, alternating rounds."""
import torch, time, numpy as np, json
torch.set_num_threads(1)
from proassist_ros.model import load, decode
from proassist_ros.eval.bench_keys import session, frame_cycle, _fill, reply_ms_per_token
from proassist_ros.model.loader import default_settings
m = load("embedded", quantize="int8")
d = default_settings("embedded")
frames = frame_cycle(40)
orig = decode.supported
res = {}
for rnd in range(2):
  for mode in ("lean", "transformers"):
    decode.supported = orig if mode == "lean" else (lambda *a: False)
    for ctx in (100, 1000):
        s = session(m, d, 4096, theta=1e-6)
        t = _fill(s, frames, ctx, 0.0)
        tot = []
        for i in range(20):
            t0 = time.perf_counter(); s.push_frame(frames[i % 40], t + 0.5 * (i + 1)); tot.append(time.perf_counter() - t0)
        res.setdefault(f"silent_{ctx}_{mode}", []).append(round(1e3 * float(np.median(tot)), 1))
    for ctx in (100, 800):
        res.setdefault(f"token_{ctx}_{mode}", []).append(round(reply_ms_per_token(m, ctx, 20)["ms_per_token"], 1))
decode.supported = orig
print(json.dumps(res, indent=1))
