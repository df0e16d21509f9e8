"""Build a ``ProAssistModel`` from a ``ProAssistConfig`` — randomly initialised or empty.

Shared by every loader: ``tiny``/``embedded`` build with a seeded random init; checkpoints build
the modules without initialising them (``init_empty_weights``, ~0.05 s instead of seconds for a
135M-parameter LLM) and then assign the stored tensors.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate import init_empty_weights
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase, SiglipVisionModel

from proassist_ros.model.config import ProAssistConfig
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.projector import build_projector
from proassist_ros.model.vision import build_vision_tower


def llama_config(d: dict, attn_implementation: str = "sdpa") -> LlamaConfig:
    cfg = LlamaConfig(**{k: v for k, v in d.items() if k != "transformers_version"})
    cfg._attn_implementation = attn_implementation
    return cfg


def build_model(
    config: ProAssistConfig,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int | None = 0,
    empty: bool = False,
    llm: LlamaForCausalLM | None = None,
    vision: SiglipVisionModel | None = None,
) -> ProAssistModel:
    """Modules for ``config``: seeded random init, or uninitialised (meta) when ``empty``.

    ``llm`` / ``vision`` reuse already loaded parts. The caller's global RNG is left untouched.
    """
    ctx = init_empty_weights(include_buffers=False) if empty else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), ctx:
        if seed is not None:
            torch.manual_seed(seed)
        if llm is None:
            llm = LlamaForCausalLM(llama_config(config.llm, config.attn_implementation))
        if vision is None:
            vision = build_vision_tower(config.vision, config.attn_implementation)
        projector = build_projector(config.vision_hidden_size, config.llm_hidden_size)
        if llm.get_input_embeddings().weight.dtype != torch.float32 and not empty:
            projector.to(llm.get_input_embeddings().weight.dtype)
    return ProAssistModel(config, llm.eval(), vision.eval(), projector, tokenizer)


def load_state(model: ProAssistModel, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Assign a full state dict (strict; tied LM head filled from the embedding if absent)."""
    state = dict(state)
    tied = bool(getattr(model.llm.config, "tie_word_embeddings", False))
    if tied and "llm.lm_head.weight" not in state and "llm.model.embed_tokens.weight" in state:
        state["llm.lm_head.weight"] = state["llm.model.embed_tokens.weight"]
    expected = set(model.state_dict().keys())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise KeyError(
            f"{source}: state dict does not match the config; missing {missing[:8]}"
            f"{'…' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    if tied:
        model.llm.tie_weights()
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise KeyError(f"{source}: parameters left uninitialised: {meta[:8]}")
