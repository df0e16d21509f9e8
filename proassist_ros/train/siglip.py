"""The SigLIP pair stage 1 trains: image tower + text tower + the pairwise sigmoid loss.

SigLIP (Zhai et al. 2023) treats every (frame, text) pair of a batch as an independent binary
problem, ``−log σ(z_ij · (t·⟨x̂_i, ŷ_j⟩ + b))`` with z = +1 for a match, a learnable temperature
``t = exp(t')`` (t' initialised to log 10) and bias b (initialised to −10). A frame may match
several texts (its phrases) and a text several frames (identical captions): labels come from text
equality, never from positions in the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SiglipTextConfig, SiglipTextModel, SiglipVisionConfig

from proassist_ros.model.vision import build_vision_tower, stem_kwargs
from proassist_ros.train.vision_data import EOS, PAD, CaptionVocab


@dataclass(frozen=True)
class TowerSettings:
    """Architecture of the tower pair. intermediate defaults to 4·hidden, as ``load("embedded")``."""

    image_size: int = 128
    patch_size: int = 16
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 0
    text_hidden: int = 0  # 0: = hidden
    text_layers: int = 2
    patch_stem: str = "patch"  # "conv": model.vision.ConvStem instead of the 16-pixel patch embedding

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        object.__setattr__(self, "intermediate", self.intermediate or 4 * self.hidden)
        object.__setattr__(self, "text_hidden", self.text_hidden or self.hidden)

    def vision_config(self) -> SiglipVisionConfig:
        return SiglipVisionConfig(image_size=self.image_size, patch_size=self.patch_size, hidden_size=self.hidden,
                                  intermediate_size=self.intermediate, num_hidden_layers=self.layers,
                                  num_attention_heads=self.heads, **stem_kwargs(self.patch_stem))

    def text_config(self, vocab: CaptionVocab) -> SiglipTextConfig:
        return SiglipTextConfig(vocab_size=len(vocab), hidden_size=self.text_hidden,
                                intermediate_size=4 * self.text_hidden, num_hidden_layers=self.text_layers,
                                num_attention_heads=self.heads, max_position_embeddings=vocab.max_len,
                                projection_size=self.hidden, pad_token_id=PAD, bos_token_id=None, eos_token_id=EOS)


class SiglipPair(nn.Module):
    """Image tower + text tower + SigLIP's learnable temperature t' and bias b."""

    def __init__(self, settings: TowerSettings, vocab: CaptionVocab, targets: str = "phrases",
                 bias_init: float = -10.0) -> None:
        super().__init__()
        self.vocab, self.targets = vocab, targets
        self.vision = build_vision_tower(settings.vision_config()).train()
        self.text = SiglipTextModel(settings.text_config(vocab)).train()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        # SigLIP's −10 suits 32k-pair batches with one positive per row; a 64-frame batch against
        # ~140 phrases has ~7 % positives, so the trainer starts b near logit(0.1) (docs).
        self.logit_bias = nn.Parameter(torch.tensor(float(bias_init)))

    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixels).pooler_output  # = ProAssist frame token 1

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        ids, mask, pos = (x.to(self.logit_bias.device) for x in self.vocab.batch(texts))
        return self.text(input_ids=ids, attention_mask=mask, position_ids=pos).pooler_output


def target_labels(image_targets: Sequence[Sequence[str]], texts: Sequence[str]) -> torch.Tensor:
    """(n_img, n_txt) 1.0 where text j equals one of image i's targets."""
    rows = [[float(t in wanted) for t in texts] for wanted in map(set, image_targets)]
    return torch.tensor(rows).reshape(len(image_targets), len(texts))


def caption_labels(image_captions: Sequence[str], text_captions: Sequence[str]) -> torch.Tensor:
    """(n_img, n_txt) 1.0 where the captions are identical: equal scene descriptions are positives."""
    return target_labels([[c] for c in image_captions], text_captions)


def sigmoid_loss(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor,
                 logit_scale: torch.Tensor, logit_bias: torch.Tensor) -> torch.Tensor:
    """SigLIP: −Σ_ij log σ(z_ij (exp(t')·⟨x̂_i, ŷ_j⟩ + b)) / n_img, z = 2·label − 1."""
    logits = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T * logit_scale.exp() + logit_bias
    return -F.logsigmoid((2 * labels.to(logits) - 1) * logits).sum() / img.shape[0]
