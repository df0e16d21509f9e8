"""``quantize``: weight-only int8 Linear layers for the LLM on CPU (node parameter ``quantize``).

Why: a reply token on CPU reads the whole fp32 LLM once (batch-1 decoding is memory-bound,
docs/performance.md), so the bytes per weight set the speed. ``int8`` stores each decoder
Linear weight as int8 with one fp32 scale per output row (symmetric, round-to-nearest): a
quarter of the bytes. The activations are not quantized.

Kernels, for chunks of at most ``PACKED_MAX_ROWS`` rows (a decode step, a frame): the native
one (``model/int8_kernel.py``, C built once per machine: int16 activations, integer dot
products, 1.4–2.5× faster than torch's per product), else ``torch._weight_int8pack_mm`` (in torch
since 2.3; the CPU kernel torchao's int8 weight-only mode and gpt-fast call), which takes bf16
activations. Longer chunks (prompts, long turns) multiply by the de-quantized weight in fp32,
where MKL's blocked GEMM is faster. Where neither int8 kernel exists, the de-quantized path
serves every call: same weights, slower.

What is quantized: every Linear of the decoder layers (INT8_LAYERS: attention q/k/v/o and the
MLP), 80 % of SmolLM2-135M's weights. The output head keeps its fp32 logits where they matter:
P(silence) and the reply's argmax are read from them, and a plain int8 or bf16 head moved them
most (teacher-forced against fp32, eval/agreement.py, docs/performance.md "int8"). So the head
is a ``RescoredHead``: an int8 scan of the vocabulary (its 113 MB fp32 read was a quarter of a
token's time) picks the logits near the top, and those are recomputed in fp32. The embedding
table, the norms, the vision tower and the projector stay fp32.

History: the first ``int8`` was dynamic quantization (``torch.ao.quantize_dynamic``) of
gate/up only: activations rounded to int8 per token lose SmolLM2's outlier channels elsewhere.
Weight-only keeps the activations and covers all decoder layers: faster and closer to fp32. CPU
only: CUDA runs in half precision instead (``dtype: auto``).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from proassist_ros.constants import DEFAULT_QUANTIZE, QUANTIZE_CHOICES  # noqa: F401 (re-exported)
from proassist_ros.model import int8_kernel

log = logging.getLogger(__name__)

# The Linear layers ``int8`` quantizes (name suffixes in a LlamaForCausalLM); see the module doc.
INT8_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PACKED_MAX_ROWS = 32  # up to: an int8 kernel; above: de-quantize and use fp32 GEMM (MKL is faster for prompts)
HEAD_EXACT_MARGIN = 8.0  # nats: head logits this close to the top are recomputed in fp32
_PACKED_MM = getattr(torch, "_weight_int8pack_mm", None)


def check_quantize(mode: str, device: str | torch.device, dtype: torch.dtype | None = None) -> str:
    """``mode`` resolved to "none" | "int8"; a clear error for an unknown mode, or int8 off CPU or
    on a model that is not fp32. "auto": int8 on CPU for an fp32 model (``dtype`` None: as
    loaded, fp32 here), none elsewhere (a GPU runs in half precision instead)."""
    m = str(mode or "none").lower()
    if m not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantize mode {mode!r} (one of {', '.join(QUANTIZE_CHOICES)})")
    on_cpu, fp32 = torch.device(device).type == "cpu", dtype in (None, torch.float32)
    if m == "auto":
        return "int8" if on_cpu and fp32 else "none"
    if m == "int8" and not on_cpu:
        raise ValueError(f"quantize 'int8' runs on CPU only, not on {device} (use dtype instead)")
    if m == "int8" and not fp32:
        raise ValueError(f"quantize 'int8' takes a float32 model, not dtype {dtype}")
    return m


class Int8Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` (out, in) stored as int8 rows times one fp32 scale per row."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()  # (out, in)
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=torch.finfo(torch.float32).tiny)  # (out,)
        self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("scale_bf16", scale.to(torch.bfloat16))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)  # (rows, in)
        small = x2.shape[0] <= PACKED_MAX_ROWS
        if small and x.dtype == torch.float32 and int8_kernel.available():  # bias included
            return int8_kernel.linear(x2, self.qweight, self.scale, self.bias).view(*x.shape[:-1], self.out_features)
        if small and _PACKED_MM is not None:
            y = _PACKED_MM(x2.to(torch.bfloat16), self.qweight, self.scale_bf16).to(x.dtype)
        else:
            y = F.linear(x2, self.dequantized().to(x.dtype))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only"


class RescoredHead(nn.Module):
    """The output head, fast and exact where it counts: an int8 pass over the whole vocabulary
    (a quarter of the fp32 head's 113 MB read per token) finds the logits within
    ``HEAD_EXACT_MARGIN`` of the largest, and those are recomputed from the fp32 rows.

    So the argmax — a reply's next token — and every logit that carries probability (P(silence)
    whenever it is near θ) are the fp32 head's; only the far tail, each term below e^-margin of
    the top one, keeps the int8 value in the softmax's sum. Chunks of more than
    ``PACKED_MAX_ROWS`` rows take the fp32 head as it is."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = linear.weight  # (V, D) fp32, shared with the model (no copy)
        self.bias = linear.bias
        self.q = Int8Linear(linear)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)  # (rows, D)
        if x2.shape[0] > PACKED_MAX_ROWS or (_PACKED_MM is None and not int8_kernel.available()):
            return F.linear(x, self.weight, self.bias)
        logits = self.q(x2).to(x.dtype)  # (rows, V), int8 weights
        for r in range(x2.shape[0]):
            row = logits[r]
            cand = torch.nonzero(row >= row.max() - HEAD_EXACT_MARGIN).squeeze(1)  # (k,)
            exact = self.weight[cand] @ x2[r]  # (k,) fp32
            row[cand] = exact if self.bias is None else exact + self.bias[cand]
        return logits.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, int8 scan + fp32 "
                f"logits within {HEAD_EXACT_MARGIN} of the top")


@torch.no_grad()
def quantize_llm(llm: nn.Module, mode: str = "int8") -> nn.Module:
    """Replace the ``INT8_LAYERS`` of ``llm`` in place by weight-only int8 layers (CPU, fp32 LLM)."""
    if check_quantize(mode, "cpu") == "none":
        return llm
    if llm.get_input_embeddings().weight.dtype != torch.float32:
        llm.float()
    targets = [(name, m) for name, m in llm.named_modules()
               if isinstance(m, nn.Linear) and name.endswith(INT8_LAYERS)]
    if not targets:
        raise ValueError(f"quantize int8: the LLM has no {'/'.join(INT8_LAYERS)} Linear layers")
    for name, linear in targets:
        parent, _, child = name.rpartition(".")
        setattr(llm.get_submodule(parent) if parent else llm, child, Int8Linear(linear))
    head = llm.get_output_embeddings()
    if isinstance(head, nn.Linear):
        llm.set_output_embeddings(RescoredHead(head))
    log.info("quantize int8: %d Linear layers of the LLM are weight-only int8 (%s kernel)", len(targets), kernel_name())
    return llm


def kernel_name() -> str:
    """Which kernel serves a decode step's int8 products in this process."""
    if int8_kernel.available():
        return "native"
    return "torch packed" if _PACKED_MM is not None else "de-quantized fp32"


def is_quantized(llm: nn.Module) -> bool:
    """Whether ``llm`` holds int8 Linear layers."""
    return any(isinstance(m, Int8Linear) for m in llm.modules())
