"""SigLIP frame encoder: I feature vectors per frame (spec §1.2, P3, P4).

Token 1 is SigLIP's ``pooler_output`` — the multi-head-attention-pooling ("MAP") head over the
post-layernorm last layer (SigLIP has no CLS token; ProAssist calls this the "cls" token). For
I = 5 / 10 the *last* layer's post-LN patch grid is average-pooled with PyTorch's
``adaptive_avg_pool2d`` to 2×2 / 3×3 and flattened row-major. The released code uses the last
layer although its config and the paper say "second last" (P3), and PyTorch's adaptive bins
overlap at 2×2 over an odd grid (P4) — both are reproduced by using exactly these calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel

from proassist_ros.constants import DEFAULT_PATCH_STEM, PATCH_STEMS

Frames = np.ndarray | torch.Tensor | Sequence[np.ndarray]
STEM_CHANNELS = (32, 64, 128, 256)  # the conv stem's stride-2 stages (4 stages = a 16-pixel patch)


def stem_kwargs(stem: str) -> dict[str, str]:
    """``SiglipVisionConfig`` keywords for ``stem``: none for the default, so a patch tower's config
    (and its fingerprint, checkpoints and resume checks) stays as it was before stems existed."""
    return {} if stem == DEFAULT_PATCH_STEM else {"patch_stem": stem}


def config_stem(vision_config: dict) -> str:
    """The stem a vision config dict (``to_dict()``, a tower's ``siglip_vision_config``) says."""
    return vision_config.get("patch_stem", DEFAULT_PATCH_STEM)


class ConvStem(nn.Sequential):
    """A convolutional stem in place of SigLIP's patch embedding (``patch_stem: conv``).

    Why: the 16-pixel patch embedding is one linear map per patch, and a small ViT trained on CPU
    learns spatial cues through it slowly — where the hand is, whether the arm reaches into the
    scene — while a small CNN learns them within a few hundred steps (docs/vision_pretraining.md,
    "What (b) needs"; "Early convolutions help transformers see better", Xiao et al. 2021). Each
    stage halves the resolution: log2(patch_size) stages of 3×3 stride-2 convolution + batch norm
    + ReLU, then a 1×1 to the width, so the grid is the patch embedding's:
    (B, 3, S, S) → (B, hidden, S / patch, S / patch).

    Batch norm, not GroupNorm: with GroupNorm + GELU the same check did not learn at all (val AUC
    .54 after 300 steps, against .75 with batch norm). Its running statistics are used whenever
    the stem is not being trained: ``train(True)`` puts the norms in training mode only while the
    stem's parameters require gradients (stage 1), so a frozen tower (stage 2, which switches its
    whole objective back to training mode after each evaluation) computes what inference computes.
    """

    def __init__(self, hidden: int, patch_size: int) -> None:
        stages = int(math.log2(patch_size))
        if 2**stages != patch_size or not 1 <= stages <= len(STEM_CHANNELS):
            raise ValueError(f"patch_stem 'conv' needs patch_size 2 … {2 ** len(STEM_CHANNELS)} as a power of 2, "
                             f"not {patch_size}")
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in STEM_CHANNELS[:stages]:
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        super().__init__(*layers, nn.Conv2d(c_in, hidden, 1))

    def train(self, mode: bool = True) -> ConvStem:
        return super().train(mode and any(p.requires_grad for p in self.parameters()))

    @property
    def weight(self) -> torch.Tensor:
        """SiglipVisionEmbeddings reads the input dtype from ``patch_embedding.weight``."""
        return self[-1].weight


def build_vision_tower(config: SiglipVisionConfig | dict, attn_implementation: str = "sdpa") -> SiglipVisionModel:
    """A randomly initialised SigLIP vision tower (weights are loaded by the caller); with
    ``patch_stem: "conv"`` in the config, a ``ConvStem`` makes the patch grid."""
    if isinstance(config, dict):
        config = SiglipVisionConfig(**{k: v for k, v in config.items() if k != "transformers_version"})
    stem = getattr(config, "patch_stem", DEFAULT_PATCH_STEM)
    if stem not in PATCH_STEMS:
        raise ValueError(f"unknown patch_stem {stem!r} (one of {', '.join(PATCH_STEMS)})")
    config._attn_implementation = attn_implementation
    tower = SiglipVisionModel(config)
    if stem == "conv":
        tower.embeddings.patch_embedding = ConvStem(config.hidden_size, config.patch_size)
    return tower.eval()


def _resize_crop(frame: torch.Tensor, size: int) -> torch.Tensor:
    """(3,H,W) uint8 → (3,size,size) float in [0,255]: shorter side → size (bicubic), centre crop.

    Mirrors the dataset preparation (PIL bicubic resize + centre crop, spec §6.4), with rounding
    to whole numbers as a uint8 JPEG pipeline would do.
    """
    _, h, w = frame.shape
    x = frame.float()
    if min(h, w) != size:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x[None], size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)[0]
        x = x.round().clamp_(0, 255)
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return x[:, top : top + size, left : left + size]


def preprocess(frames: Frames, image_size: int) -> torch.Tensor:
    """uint8 RGB frames of any size → SigLIP pixel values (N,3,S,S) in [-1, 1].

    Accepts an (N,H,W,3) array/tensor, one (H,W,3) frame, or a list of (H,W,3) frames (sizes may
    differ). ×1/255 then (x−0.5)/0.5 as in ``clip_vision_encode``.
    """
    if isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim == 3:
        frames = frames[None]
    items = list(frames)
    if not items:
        raise ValueError("no frames given")
    out = []
    for f in items:
        t = torch.as_tensor(np.ascontiguousarray(f) if isinstance(f, np.ndarray) else f)
        if t.ndim != 3 or t.shape[-1] != 3:
            raise ValueError(f"expected (H,W,3) RGB frames, got shape {tuple(t.shape)}")
        if t.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames, got {t.dtype}")
        out.append(_resize_crop(t.permute(2, 0, 1), image_size))
    x = torch.stack(out)  # (N,3,S,S) in [0,255]
    return (x / 255.0 - 0.5) / 0.5


def pool_patches(last_hidden_state: torch.Tensor, n: int) -> torch.Tensor:
    """(N, P, D) post-LN patch tokens → (N, n², D): adaptive average pooling, row-major."""
    num, p, d = last_hidden_state.shape
    g = math.isqrt(p)
    if g * g != p:
        raise ValueError(f"patch count {p} is not a square grid")
    grid = last_hidden_state.reshape(num, g, g, d).permute(0, 3, 1, 2)  # (N, D, g, g)
    pooled = F.adaptive_avg_pool2d(grid, (n, n))  # (N, D, n, n)
    return pooled.flatten(2).transpose(1, 2)  # (N, n², D)


@torch.no_grad()
def encode_pixels(tower: SiglipVisionModel, pixels: torch.Tensor, patch_grid: int) -> torch.Tensor:
    """(N,3,S,S) pixel values → (N, I, D_vision), I = 1 + patch_grid²."""
    out = tower(pixel_values=pixels)
    head = out.pooler_output[:, None]  # (N, 1, D): MAP head = ProAssist's "cls" token
    if patch_grid == 0:
        return head
    # SigLIP patch tokens start at index 0 (no CLS), last layer after post_layernorm.
    return torch.cat([head, pool_patches(out.last_hidden_state, patch_grid)], dim=1)
