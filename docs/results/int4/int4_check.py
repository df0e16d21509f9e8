"""int4 weight-only for the LLM's decoder: faster, but does it decide like fp32? (docs/performance.md)

Round-to-nearest, asymmetric, groups of 32 input columns (W ≈ (q − 8)·scale + zero, torch's CPU
int4 kernel layout, as torchao's int4 weight-only mode). Teacher-forced against fp32 with
``eval.agreement.teacher_forced`` on two sample bags, for int4 in every decoder Linear, in the MLP
only, and in gate/up only (the rest int8, the head as ``quantize: int8`` has it); then the
matrix products of one token over 30 layers, int8 vs int4, in one process.

    python docs/results/int4/int4_check.py
"""

import copy
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from proassist_ros.data.dataset_read import read_episode
from proassist_ros.engine import EngineConfig
from proassist_ros.engine.config import model_settings
from proassist_ros.eval.agreement import teacher_forced
from proassist_ros.eval.offline import run_episode
from proassist_ros.model import load
from proassist_ros.model import quantize as Q
from proassist_ros.model.loader import default_settings

GROUP = 32
BAGS = ("samples/test_0004_take_medicine", "samples/test_0005_assemble_lamp")


class Int4Linear(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        out, inp = weight.shape
        w = weight.float().reshape(out, inp // GROUP, GROUP)
        lo, hi = w.amin(-1), w.amax(-1)
        scale = ((hi - lo) / 15).clamp(min=1e-12)
        q = torch.round((w - lo[..., None]) / scale[..., None]).clamp(0, 15).reshape(out, inp)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 2)
        self.sz = torch.stack([scale, lo + 8 * scale], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
        self.deq = ((q.reshape(out, -1, GROUP) - 8) * scale[..., None] + (lo + 8 * scale)[..., None]).reshape(out, inp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        if x2.shape[0] <= Q.PACKED_MAX_ROWS:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2.to(torch.bfloat16), self.packed, GROUP, self.sz)
        else:
            y = F.linear(x2, self.deq)
        return y.to(x.dtype).reshape(*x.shape[:-1], -1)


def agreement() -> dict:
    model = load("embedded")
    cfg = EngineConfig(**model_settings(-1.0, 0, default_settings("embedded"), "ips"))
    episodes = [read_episode(b) for b in BAGS]
    out = {}
    for what, four in (("all decoder layers", Q.INT8_LAYERS), ("MLP", ("gate_proj", "up_proj", "down_proj")),
                       ("gate/up", ("gate_proj", "up_proj")), ("none (int8)", ())):
        llm = Q.quantize_llm(copy.deepcopy(model.llm), "int8")
        for name, _ in list(llm.named_modules()):
            if four and name.endswith(four) and ".layers." in name:
                parent, _, child = name.rpartition(".")
                setattr(llm.get_submodule(parent), child, Int4Linear(model.llm.get_submodule(name).weight.data))
        s = teacher_forced(model, llm, lambda: [run_episode(model, e, cfg) for e in episodes], cfg.theta).summary()
        out[what] = s
        print(f"int4 in {what}: argmax {s['argmax_agreement']:.3f}, same side of θ {s['decision_agreement']:.3f}, "
              f"max |ΔP(silence)| {s['max_abs_dp_silence']:.3f} ({s['calls']} calls)", flush=True)
    return out


def products() -> dict:
    torch.set_num_threads(1)
    shapes = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)] * 30
    x = {k: torch.randn(1, k).to(torch.bfloat16) for k in (576, 1536)}
    i8 = [(torch.randint(-127, 127, s, dtype=torch.int8), torch.rand(s[0]).to(torch.bfloat16)) for s in shapes]
    i4 = [Int4Linear(torch.randn(*s)) for s in shapes]

    def int8() -> None:
        for q, sc in i8:
            torch._weight_int8pack_mm(x[q.shape[1]], q, sc)

    def int4() -> None:
        for m in i4:
            torch.ops.aten._weight_int4pack_mm_for_cpu(x[m.deq.shape[1]], m.packed, GROUP, m.sz)

    ms: dict[str, list[float]] = {"int8": [], "int4": []}
    for _ in range(3):
        for f in (int8, int4):
            f()
            t = time.perf_counter()
            for _ in range(5):
                f()
            ms[f.__name__].append(round((time.perf_counter() - t) / 5 * 1e3, 2))
    print("ms per token for the decoder's products (3 alternating rounds):", ms)
    return ms


if __name__ == "__main__":
    result = {"agreement": agreement(), "products_ms": products()}
    with open("docs/results/int4/int4_check.json", "w") as f:
        json.dump(result, f, indent=1)
