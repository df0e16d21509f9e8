"""LoRA on the LLM (spec §1.4, §7.4 step 3): PEFT for training, a plain merge for inference.

Paper/code settings (``LoraSettings()``): r = 128, α = 256 (merge scale α/r = 2), dropout 0.05,
targets = every q/k/v/o/gate/up/down projection of every layer plus ``lm_head``, given to PEFT as
one full-match regex exactly like ``get_lora_config``. The projector is not LoRA'd: it is trained
fully (the original lists it in ``modules_to_save``); the vision tower stays frozen.

``merge_adapter_weights`` merges a PEFT-format adapter state dict by hand
(W ← W + (α/r)·B·A in fp32, cast back) — used for released checkpoints, where depending on
PEFT's handling of a 0.11-era adapter config would add nothing but risk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from proassist_ros.model.modeling import ProAssistModel

PAPER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters; defaults are the released models' (spec §1.4)."""

    r: int = 128
    alpha: float = 256.0
    dropout: float = 0.05
    targets: Sequence[str] = PAPER_TARGETS
    lm_head: bool = True

    @property
    def scale(self) -> float:
        return self.alpha / self.r

    def target_regex(self) -> str:
        """PEFT full-match regex over the LLM's module names (``model.layers.*``, ``lm_head``)."""
        rx = f"model.*({'|'.join(self.targets)})"
        return f"{rx}|lm_head$" if self.lm_head else rx


def add_lora(model: ProAssistModel, settings: LoraSettings = LoraSettings(), *, init_random: bool = False,
             seed: int = 0) -> ProAssistModel:
    """Wrap ``model.llm`` in a PEFT LoRA model (in place) and freeze everything but LoRA + projector.

    ``init_random`` gives B ≠ 0 (PEFT's ``init_lora_weights=False``), for tests.
    """
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_regex(),
        task_type="CAUSAL_LM",
        init_lora_weights=not init_random,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.llm = get_peft_model(model.llm, cfg)
    for p in model.vision.parameters():
        p.requires_grad_(False)
    for p in model.mm_projector.parameters():
        p.requires_grad_(True)
    return model


def merge_lora(model: ProAssistModel) -> ProAssistModel:
    """Fold the LoRA deltas into the base weights and drop the PEFT wrapper (for inference)."""
    from peft import PeftModel

    if isinstance(model.llm, PeftModel):
        model.llm = model.llm.merge_and_unload()
    return model.eval()


@torch.no_grad()
def merge_adapter_weights(
    llm: nn.Module, adapter: Mapping[str, torch.Tensor], alpha: float, *, source: str = "adapter"
) -> list[str]:
    """W ← W + (α/r)·B·A for every ``…lora_A/lora_B`` pair in a PEFT adapter state dict.

    r is read from each A's shape (plain LoRA: no rsLoRA, no DoRA — the caller checks the
    adapter config). Non-LoRA keys are ignored here. Returns the merged module names.
    """
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in adapter.items():
        m = _LORA_KEY.match(key)
        if m:
            pairs.setdefault(m["module"], {})[m["ab"]] = value
    modules = dict(llm.named_modules())
    merged = []
    for name, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise KeyError(f"{source}: lora_{'B' if 'A' in ab else 'A'} missing for module {name}")
        mod = modules.get(name)
        if not isinstance(mod, nn.Linear):
            raise KeyError(f"{source}: LoRA key for {name!r}, which is not a Linear layer of the LLM")
        a, b = ab["A"].float(), ab["B"].float()  # (r, in), (out, r)
        r = a.shape[0]
        if b.shape != (mod.weight.shape[0], r) or a.shape[1] != mod.weight.shape[1]:
            raise ValueError(
                f"{source}: {name}: lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} do not fit "
                f"weight {tuple(mod.weight.shape)}"
            )
        if name == "lm_head" and mod.weight is llm.get_input_embeddings().weight:
            # A tied head would drag the input embedding along: untie before merging.
            mod.weight = nn.Parameter(mod.weight.detach().clone())
            llm.config.tie_word_embeddings = False
        w = mod.weight.data
        mod.weight.data = (w.float() + (alpha / r) * (b @ a)).to(w.dtype)
        merged.append(name)
    return merged
