"""``load(spec)``: the single entry point that turns a spec string into a ``ProAssistModel``.

Specs: ``"tiny"`` (random, tests), ``"embedded"`` (SmolLM2-135M-Instruct + small random SigLIP,
untrained for ProAssist), or a directory: an own checkpoint (``proassist_config.json``) or a
released ProAssist directory (``adapter_config.json`` / ``config.json`` with ProAct keys; needs
``llm_path=`` and ``vision_path=``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from proassist_ros.model.config import CONFIG_NAME, SETTINGS_KEYS
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.spec import check_spec, spec_kind  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype name (or torch.dtype, or None = as loaded) as a torch.dtype; "auto" is resolved by
    ``auto_dtype`` because it depends on the model and the device."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (one of {sorted(DTYPES)})") from None


def auto_dtype(kind: str, device: str | torch.device) -> torch.dtype | None:
    """``dtype="auto"``: what each kind of model runs in on ``device``.

    - CPU: as loaded (fp32; half precision is slow and lossy on CPUs).
    - CUDA, a released ProAssist checkpoint: float16, as the release was evaluated (spec P11:
      trained in bf16, evaluated with fp16 weights and an fp16 LoRA merge).
    - CUDA, anything else (own checkpoints, embedded, tiny): bfloat16 where the GPU supports it,
      else float16.
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    if kind == "released":
        return torch.float16
    supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if supported else torch.float16


@torch.no_grad()
def cast_parameters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast floating-point parameters only; buffers such as RoPE's ``inv_freq`` stay fp32.

    ``module.to(dtype)`` would round ``inv_freq`` to bf16/fp16 as well, which a model loaded
    with ``from_pretrained(dtype=...)`` (the original's path) never does.
    """
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)




def default_settings(spec: str | Path) -> dict[str, Any]:
    """The run-time settings (``SETTINGS_KEYS``: ``context_limit``, ``reserve``, ``theta``,
    ``append_eot_after_reply``) a model spec was trained / tuned for, read from its JSON without
    loading weights; {} when it names none (tiny, released checkpoints)."""
    import json

    spec_s = str(spec)
    kind = spec_kind(spec_s)
    if kind == "embedded":
        from proassist_ros.model.embedded import WEIGHTS_DIR

        path = WEIGHTS_DIR / "adapter_config.json"
        d = json.loads(path.read_text()) if path.is_file() else {}
    elif kind == "checkpoint":
        d = json.loads((Path(spec_s).expanduser() / CONFIG_NAME).read_text()).get("defaults", {})
    else:
        d = {}
    return {k: d[k] for k in SETTINGS_KEYS if d.get(k) is not None}


def load(
    spec: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    quantize: str = "none",
    **overrides: Any,
) -> ProAssistModel:
    """Load a ProAssist model; ``overrides`` go to the spec's loader (see docs/model.md).

    ``dtype``: None (as loaded), "auto" (see ``auto_dtype``), a name or a torch.dtype.
    ``quantize``: "none", "int8" (the decoder's Linear layers as weight-only int8; CPU only,
    model/quantize.py) or "auto" (int8 on CPU for an fp32 model, else none).
    """
    from proassist_ros.model.quantize import check_quantize, quantize_llm

    spec_s = str(spec)
    if isinstance(dtype, str) and dtype.lower() == "auto":
        torch_dtype = auto_dtype(spec_kind(spec_s), device)
    else:
        torch_dtype = resolve_dtype(dtype)
    quantize = check_quantize(quantize, device, torch_dtype)
    if spec_s == "tiny":
        from proassist_ros.model.tiny import load_tiny

        model = load_tiny(**overrides)
    elif spec_s == "embedded":
        from proassist_ros.model.embedded import load_embedded

        model = load_embedded(**overrides)
    else:
        path = Path(spec_s).expanduser()
        if check_spec(spec_s) == "checkpoint":
            from proassist_ros.model.checkpoint import load_checkpoint

            model = load_checkpoint(path, **overrides)
        else:
            from proassist_ros.model.released import load_released

            model = load_released(path, dtype=torch_dtype, **overrides)
    if torch_dtype is not None:
        cast_parameters(model, torch_dtype)
    model.to(torch.device(device))
    if quantize != "none":
        quantize_llm(model.llm, quantize)
    if model.config.untrained:
        log.warning(
            "model %r is UNTRAINED for ProAssist (%s): its speak/silence decisions and replies are "
            "not meaningful", model.config.name, model.config.source,
        )
    return model.eval()
