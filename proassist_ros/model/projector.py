"""The multimodal projector ``mm_projector`` (spec §1.3).

Linear(D_vision → D_llm) → exact GELU → Linear(D_llm → D_llm), with biases. Indices 0 and 2 of
the ``nn.Sequential`` are what the released adapter's ``mm_projector.{0,2}.*`` keys address.
"""

from __future__ import annotations

from torch import nn


def build_projector(vision_hidden_size: int, llm_hidden_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(vision_hidden_size, llm_hidden_size, bias=True),
        nn.GELU(),  # exact (erf) GELU, not the tanh approximation
        nn.Linear(llm_hidden_size, llm_hidden_size, bias=True),
    )
