"""Helpers for tests of this and higher layers (tiny models only; never used at run time).

A randomly initialised tiny LLM puts P(silence) near 1/V at every frame, so it always speaks.
``calibrate_silence`` rewrites the LM-head row of the silence token so that P(silence) takes
chosen values at chosen positions of a fixed token/frame stream — enough to exercise the
θ rule deterministically without training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from proassist_ros.model.modeling import ProAssistModel


def random_frames(n: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8 RGB noise frames, deterministic per seed."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)


@torch.no_grad()
def final_hidden(model: ProAssistModel, input_ids: Sequence[int], frame_feats: torch.Tensor | None) -> torch.Tensor:
    """(T, D) final-norm hidden states of one full forward over a whole sequence."""
    ids = torch.as_tensor(list(input_ids), dtype=torch.long)
    emb = model.embed_tokens(ids, frame_feats)[None]
    return model.llm.model(inputs_embeds=emb).last_hidden_state[0].float()


@torch.no_grad()
def calibrate_silence(
    model: ProAssistModel, hidden: torch.Tensor, p_targets: Sequence[float]
) -> None:
    """Set the silence row of the LM head so that P(silence | hidden[k]) ≈ p_targets[k].

    ``hidden`` (K, D) with K ≤ D: least squares on the silence logit, the other logits fixed.
    """
    head = model.llm.get_output_embeddings().weight  # (V, D)
    sil = model.chat.silence_id
    logits = hidden @ head.float().T  # (K, V)
    others = torch.cat([logits[:, :sil], logits[:, sil + 1 :]], dim=1)
    p = torch.as_tensor(list(p_targets), dtype=torch.float32)
    target = torch.logsumexp(others, dim=1) + torch.log(p) - torch.log1p(-p)  # (K,)
    w = torch.linalg.lstsq(hidden, target[:, None]).solution[:, 0]  # (D,)
    head[sil] = w.to(head.dtype)
