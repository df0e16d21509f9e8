"""``quantize``: int8 Linear layers for the LLM on CPU (node parameter ``quantize``, ``--quantize``).

Why: a reply token on CPU reads the whole fp32 LLM once (batch-1 decoding is memory-bound:
``aten::mm`` is ~80 % of a token, docs/performance.md), so the bytes per weight set the speed.
Dynamic int8 quantization stores each ``nn.Linear`` weight as int8 with one scale per output
channel and quantizes the activations per call; the matmul runs in FBGEMM's int8 kernels. On the
2-core machine that roughly halves a reply token's time (docs/performance.md, "int8").

Which implementation: ``torch.ao.quantization.quantize_dynamic`` (``qint8``, per-channel weight
observers) — it ships with the pinned torch, needs no extra package and has x86 kernels.
torchao is the maintained successor, but it is not installable offline here (no wheel in the
pinned set) and its CPU int8 paths target ``torch.compile``; see docs/performance.md.

What is quantized: the MLP's ``gate_proj`` and ``up_proj`` of every layer (INT8_LAYERS), 40 % of
SmolLM2-135M's weights. Everything else stays fp32, because dynamic quantization rounds each
layer's input activations to int8 with one scale per token, and SmolLM2's ``down_proj`` inputs,
attention outputs and final hidden states carry outlier channels that such a scale flattens.
Measured teacher-forced against fp32 on a sample bag (eval/agreement.py, docs/performance.md
"int8"): every Linear in int8 moved P(silence) by up to 0.63 and 2.8 % of the LLM calls fell on
the other side of θ (2.7× faster); gate/up only: 0.13 and 0.4 % (1.3× faster). The embedding
table, the norms, the vision tower and the projector stay in float. CPU only: CUDA runs in half
precision instead (``dtype: auto``).
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

log = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("none", "int8")
# The Linear layers ``int8`` quantizes (name suffixes in a LlamaForCausalLM); see the module doc.
INT8_LAYERS = ("gate_proj", "up_proj")


def check_quantize(mode: str, device: str | torch.device) -> str:
    """``mode`` normalised ("none" | "int8"); a clear error for an unknown mode or int8 off CPU."""
    m = str(mode or "none").lower()
    if m not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown quantize mode {mode!r} (one of {', '.join(QUANTIZE_CHOICES)})")
    if m == "int8" and torch.device(device).type != "cpu":
        raise ValueError(f"quantize 'int8' runs on CPU only, not on {device} (use dtype instead)")
    return m


@torch.no_grad()
def quantize_llm(llm: nn.Module, mode: str = "int8") -> nn.Module:
    """Replace the ``INT8_LAYERS`` of ``llm`` in place by dynamic int8 Linear layers.

    The LLM must be in fp32 (the quantized kernels take fp32 activations) and on CPU.
    """
    if check_quantize(mode, "cpu") == "none":
        return llm
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization as deprecated in favour of torchao (module doc).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        if llm.get_input_embeddings().weight.dtype != torch.float32:
            llm.float()
        spec = {name: per_channel_dynamic_qconfig for name, m in llm.named_modules()
                if isinstance(m, nn.Linear) and name.endswith(INT8_LAYERS)}
        if not spec:
            raise ValueError(f"quantize int8: the LLM has no {'/'.join(INT8_LAYERS)} Linear layers")
        quantize_dynamic(llm, spec, dtype=torch.qint8, inplace=True)
    log.info("quantize int8: %d Linear layers of the LLM (%s) are dynamic int8", len(spec),
             "/".join(INT8_LAYERS))
    return llm


def is_quantized(llm: nn.Module) -> bool:
    """Whether ``llm`` holds dynamic int8 Linear layers."""
    return any("quantized" in type(m).__module__ for m in llm.modules())
