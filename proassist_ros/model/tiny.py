"""``load("tiny")``: a tiny random ProAssist model for tests and wiring (CPU, ~4 M parameters).

Tiny SigLIP (32×32 images, 4×4 patches → 8×8 grid, hidden 32, 2 layers) and a tiny Llama (hidden
64, 2 layers, GQA 4/2 heads) whose vocabulary is exactly the real tokenizer minus ``<image>``:
the SmolLM2 tokenizer for ``chatml``, its Llama-3 flavoured variant for ``llama3``. Weights are
random (seeded) — outputs are meaningless but deterministic.
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, SiglipVisionConfig

from proassist_ros.model.assemble import build_model
from proassist_ros.model.config import ProAssistConfig
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.tokenizer import builtin_tokenizer
from proassist_ros.model.vision import stem_kwargs


def tiny_config(
    chat_format: str = "chatml",
    tokens_per_frame: int = 1,
    *,
    vocab_size: int,
    image_size: int = 32,
    patch_size: int = 4,
    vision_hidden: int = 32,
    llm_hidden: int = 64,
    num_layers: int = 2,
    patch_stem: str = "patch",
) -> ProAssistConfig:
    vision = SiglipVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=vision_hidden,
        intermediate_size=2 * vision_hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        **stem_kwargs(patch_stem),
    )
    llm = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=llm_hidden,
        intermediate_size=2 * llm_hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )
    return ProAssistConfig(
        name=f"tiny-{chat_format}-I{tokens_per_frame}",
        chat_format=chat_format,
        tokens_per_frame=tokens_per_frame,
        image_size=image_size,
        vision_hidden_size=vision_hidden,
        llm_hidden_size=llm_hidden,
        untrained=True,
        source="tiny random init",
        llm=llm.to_dict(),
        vision=vision.to_dict(),
    )


def load_tiny(
    chat_format: str = "chatml", tokens_per_frame: int = 1, seed: int = 0, **sizes: Any
) -> ProAssistModel:
    tok = builtin_tokenizer(chat_format)
    cfg = tiny_config(chat_format, tokens_per_frame, vocab_size=len(tok) - 1, **sizes)
    return build_model(cfg, tok, seed=seed)
