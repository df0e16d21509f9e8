"""``ProAssistModel``: SigLIP tower + projector + Llama-architecture chat LLM (spec §1.1).

The module only *holds* the parts and knows how to embed an interleaved token/frame chunk;
streaming (KV cache, speak/silence decision, greedy replies) lives in ``streaming.py`` and all
per-stream state in ``StreamState`` — never on the model (P18), so one model can serve many
streams.

State-dict layout (also the own checkpoint format): ``llm.*`` (a ``LlamaForCausalLM``),
``vision.*`` (a ``SiglipVisionModel``), ``mm_projector.{0,2}.*``.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase, SiglipVisionModel

from proassist_ros.model.chat import ChatFormat, make_chat
from proassist_ros.model.config import ProAssistConfig
from proassist_ros.model.vision import Frames, encode_pixels, preprocess

log = logging.getLogger(__name__)

VISION_BATCH = 64  # frames per vision-tower call (the original used 128 on a GPU)


class ProAssistModel(nn.Module):
    """The ProAssist architecture; build it through ``proassist_ros.model.load``."""

    def __init__(
        self,
        config: ProAssistConfig,
        llm: LlamaForCausalLM,
        vision: SiglipVisionModel,
        mm_projector: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
    ) -> None:
        super().__init__()
        self.config = config
        self.llm = llm
        self.vision = vision
        self.mm_projector = mm_projector
        self.tokenizer = tokenizer
        self.chat: ChatFormat = make_chat(config.chat_format, tokenizer, config.tokens_per_frame)
        vocab = self.vocab_size
        # P5: <image> must lie outside the embedding table / LM head, so it can never be emitted.
        if self.chat.img_token_id < vocab:
            raise ValueError(
                f"<image> id {self.chat.img_token_id} is inside the LLM vocabulary ({vocab}); "
                "the embedding must not be resized for it"
            )
        if len(tokenizer) - 1 > vocab:
            raise ValueError(
                f"tokenizer has {len(tokenizer) - 1} tokens besides <image> but the LLM only {vocab}"
            )
        self.eval()

    # ---- properties -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.llm.get_input_embeddings().weight.shape[0])

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    # ---- frames -------------------------------------------------------------------------------
    def encode_frames(self, frames: Frames) -> torch.Tensor:
        """uint8 RGB frames → vision features (N, I, D_vision), before the projector."""
        pixels = preprocess(frames, self.config.image_size)  # (N,3,S,S)
        vdtype = next(self.vision.parameters()).dtype  # runs in the LLM's dtype (P11)
        feats = [
            encode_pixels(
                self.vision, pixels[i : i + VISION_BATCH].to(self.device, vdtype), self.config.patch_grid
            )
            for i in range(0, pixels.shape[0], VISION_BATCH)
        ]
        return torch.cat(feats)  # (N, I, D_vision)

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        """(…, D_vision) vision features (e.g. pre-extracted) → (…, D_llm) LLM embeddings."""
        w = self.mm_projector[0].weight
        return self.mm_projector(feats.to(w.device, w.dtype))

    def embed_frames(self, frames: Frames) -> torch.Tensor:
        """uint8 RGB frames (N,H,W,3) or a list of (H,W,3) → (N, I, D_llm)."""
        return self.project(self.encode_frames(frames))

    # ---- tokens -------------------------------------------------------------------------------
    def embed_tokens(self, input_ids: torch.Tensor, frame_feats: torch.Tensor | None = None) -> torch.Tensor:
        """``joint_embed``: (T,) ids + (n_img, D_llm) features → (T, D_llm) input embeddings.

        Ids are clamped to the table (``<image>`` lies one past it), embedded, and the ``<image>``
        positions are overwritten with the frame features in order.
        """
        ids = input_ids.to(self.device)
        emb = self.llm.get_input_embeddings()(ids.clamp(max=self.vocab_size - 1))  # (T, D)
        is_img = ids == self.chat.img_token_id
        n_img = int(is_img.sum())
        n_feat = 0 if frame_feats is None else int(frame_feats.reshape(-1, emb.shape[-1]).shape[0])
        if n_img != n_feat:
            raise ValueError(f"chunk has {n_img} <image> tokens but {n_feat} frame feature vectors")
        if n_img:
            emb = emb.clone()
            emb[is_img] = frame_feats.reshape(-1, emb.shape[-1]).to(emb.device, emb.dtype)
        return emb

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"name={c.name!r}, chat_format={c.chat_format}, I={c.tokens_per_frame}, "
            f"image_size={c.image_size}, untrained={c.untrained}"
        )
