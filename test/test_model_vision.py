"""Frame tokens (spec §1.2): I = 1 / 5 / 10, pooled head + adaptive-pooled last-layer patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from proassist_ros.model import load
from proassist_ros.model.vision import pool_patches, preprocess


def pytorch_bins(g: int, n: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins: [floor(i·g/n), ceil((i+1)·g/n))."""
    return [(math.floor(i * g / n), math.ceil((i + 1) * g / n)) for i in range(n)]


def test_bins_overlap_like_pytorch_on_27_grid():
    """27×27 (SO400M) → 2×2 uses overlapping bins [0,14) and [13,27); 3×3 does not (P4)."""
    assert pytorch_bins(27, 2) == [(0, 14), (13, 27)]
    assert pytorch_bins(27, 3) == [(0, 9), (9, 18), (18, 27)]
    x = torch.randn(2, 27 * 27, 6)
    for n in (2, 3):
        got = pool_patches(x, n)  # (2, n², 6)
        grid = x.reshape(2, 27, 27, 6)
        bins = pytorch_bins(27, n)
        want = torch.stack([grid[:, r0:r1, c0:c1].mean(dim=(1, 2)) for r0, r1 in bins for c0, c1 in bins], dim=1)
        assert got.shape == (2, n * n, 6)
        assert torch.allclose(got, want, atol=1e-5)
    # Row 13 is shared: changing it moves both rows of the 2×2 output but no 3×3 cell of row 2.
    bumped = x.reshape(2, 27, 27, 6).clone()
    bumped[:, 13] += 1.0
    delta2 = pool_patches(bumped.reshape(2, 729, 6), 2) - pool_patches(x, 2)
    assert (delta2.abs() > 1e-3).all()


@pytest.mark.parametrize("tokens_per_frame,n", [(1, 0), (5, 2), (10, 3)])
def test_frame_tokens(tokens_per_frame, n):
    # 36 px / 4 px patches → an odd 9×9 grid, so 2×2 bins overlap as on SO400M's 27×27.
    model = load("tiny", chat_format="chatml", tokens_per_frame=tokens_per_frame, image_size=36)
    assert model.config.patch_grid == n
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 36, 36, 3), dtype=np.uint8)
    feats = model.encode_frames(frames)
    assert feats.shape == (3, tokens_per_frame, model.config.vision_hidden_size)

    with torch.no_grad():
        out = model.vision(pixel_values=preprocess(frames, 36))
    assert torch.allclose(feats[:, 0], out.pooler_output, atol=1e-6)  # token 1 = MAP head
    if n:
        grid = out.last_hidden_state.reshape(3, 9, 9, -1).permute(0, 3, 1, 2)  # last layer, post-LN
        want = F.adaptive_avg_pool2d(grid, n).flatten(2).transpose(1, 2)
        assert torch.allclose(feats[:, 1:], want, atol=1e-6)
        if n == 2:  # overlapping bins [0,5) and [4,9)
            assert pytorch_bins(9, 2) == [(0, 5), (4, 9)]
            top_left = out.last_hidden_state.reshape(3, 9, 9, -1)[:, 0:5, 0:5].mean(dim=(1, 2))
            assert torch.allclose(feats[:, 1], top_left, atol=1e-5)
        # Not the second-last layer (P3): that would give different patch tokens.
        with torch.no_grad():
            hs = model.vision(pixel_values=preprocess(frames, 36), output_hidden_states=True).hidden_states
        wrong = F.adaptive_avg_pool2d(hs[-2].reshape(3, 9, 9, -1).permute(0, 3, 1, 2), n)
        assert not torch.allclose(feats[:, 1:], wrong.flatten(2).transpose(1, 2), atol=1e-3)

    emb = model.embed_frames(frames)
    assert emb.shape == (3, tokens_per_frame, model.config.llm_hidden_size)
    assert torch.allclose(emb, model.project(feats), atol=1e-6)
    # Batched equals one by one, and a list of differently sized frames is accepted.
    single = torch.cat([model.embed_frames(f) for f in frames])
    assert torch.allclose(emb, single, atol=1e-5)
    mixed = model.embed_frames([frames[0], np.zeros((50, 80, 3), np.uint8)])
    assert mixed.shape == (2, tokens_per_frame, model.config.llm_hidden_size)


def test_preprocess_scale_resize_and_centre_crop():
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[..., 0] = 255
    px = preprocess(frame, 32)
    assert px.shape == (1, 3, 32, 32)
    assert torch.equal(px[0, 0], torch.ones(32, 32)) and torch.equal(px[0, 1], -torch.ones(32, 32))

    # 64×128 (H×W): shorter side → 32, i.e. 32×64, then the centre 32 columns are kept.
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, 32:96] = 200  # the central half is bright, the outer quarters dark
    px = preprocess(wide, 32)
    assert px.shape == (1, 3, 32, 32)
    centre = px[0, :, :, 2:-2]  # away from the bicubic edge ringing
    assert torch.allclose(centre, torch.full_like(centre, 200 / 255 * 2 - 1), atol=0.02)

    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((32, 32, 3), np.float32), 32)
    with pytest.raises(ValueError, match="RGB"):
        preprocess(np.zeros((32, 32), np.uint8)[None], 32)


def test_tokens_per_frame_must_be_one_plus_square():
    with pytest.raises(ValueError, match="1 \\+ n"):
        load("tiny", tokens_per_frame=3)


def test_image_token_is_outside_vocab_and_replaced():
    model = load("tiny", chat_format="llama3", tokens_per_frame=5)
    ids = model.chat.encode_text("look") + model.chat.image_ids(2)
    feats = torch.randn(10, model.config.llm_hidden_size)
    emb = model.embed_tokens(torch.tensor(ids), feats)
    assert torch.equal(emb[-10:], feats)
    n_text = len(ids) - 10
    assert torch.equal(emb[:n_text], model.llm.get_input_embeddings()(torch.tensor(ids[:n_text])))
    with pytest.raises(ValueError, match="frame feature"):
        model.embed_tokens(torch.tensor(ids), feats[:9])


def test_embedded_model_with_a_conv_stem_tower():
    """A stage-1 tower with ``patch_stem: conv`` gets a model built to fit it (stage 2's route:
    ``load("embedded", weights="random", **tower_overrides(dir))``); the shipped tower (v6) is one,
    and asking the shipped model for the other stem is refused with the way out."""
    from proassist_ros.model.embedded import WEIGHTS_DIR
    from proassist_ros.model.tower import tower_overrides
    from proassist_ros.model.vision import ConvStem

    assert tower_overrides(WEIGHTS_DIR)["patch_stem"] == "conv"
    model = load("embedded", weights="random", patch_stem="conv", image_size=64, patch_size=16, vision_hidden=64,
                 vision_layers=1)
    assert isinstance(model.vision.embeddings.patch_embedding, ConvStem)
    assert model.config.vision["patch_stem"] == "conv"
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    assert model.encode_frames(frames).shape == (2, 1, 64)
    with pytest.raises(ValueError, match="patch_stem=patch .shipped: conv.*weights='random'"):
        load("embedded", patch_stem="patch")
    patch = load("embedded", weights="random", patch_stem="patch", image_size=64, patch_size=16, vision_hidden=64,
                 vision_layers=1)
    assert not isinstance(patch.vision.embeddings.patch_embedding, ConvStem)
