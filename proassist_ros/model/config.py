"""``ProAssistConfig``: everything needed to rebuild a ProAssist model without its weights.

It nests the LLM's ``LlamaConfig`` and the vision tower's ``SiglipVisionConfig`` as plain dicts
so that one JSON file (``proassist_config.json``) describes a checkpoint completely.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proassist_ros.model.spec import CONFIG_NAME  # noqa: F401 - one home: model/spec.py

FORMAT_VERSION = 1
# The run-time settings a model can carry (engine.config.EngineConfig field names).
# ``append_eot_after_reply``: how it was trained to end a reply (train/layout.py TRAINED_LAYOUT:
# models trained here, true); a model that does not say (released ProAssist checkpoints, tiny)
# runs with the released inference's default, off (spec P1).
SETTINGS_KEYS = ("context_limit", "reserve", "theta", "append_eot_after_reply")


def patch_grid_for(tokens_per_frame: int) -> int:
    """I = 1 (pooled head) + n² pooled patches → n (I=1 → 0, I=5 → 2, I=10 → 3; spec §1.2)."""
    n = math.isqrt(tokens_per_frame - 1) if tokens_per_frame >= 1 else -1
    if n < 0 or n * n != tokens_per_frame - 1:
        raise ValueError(f"tokens_per_frame (I) must be 1 + n² (1, 5, 10, ...), got {tokens_per_frame}")
    return n


@dataclass
class ProAssistConfig:
    """Architecture and provenance of one ProAssist model.

    ``tokens_per_frame`` is the paper's I; ``untrained`` marks models whose weights (or parts of
    them, e.g. a random projector) were never trained for ProAssist — their decisions are noise.
    """

    name: str = "proassist"
    chat_format: str = "llama3"  # "llama3" | "chatml"
    tokens_per_frame: int = 1  # I
    image_size: int = 384
    vision_hidden_size: int = 1152
    llm_hidden_size: int = 4096
    img_token: str = "<image>"
    attn_implementation: str = "sdpa"
    untrained: bool = False
    source: str = ""  # where the weights came from (free text, for logs)
    llm: dict[str, Any] = field(default_factory=dict)  # LlamaConfig.to_dict()
    vision: dict[str, Any] = field(default_factory=dict)  # SiglipVisionConfig.to_dict()
    # Run-time settings the weights were trained / tuned for (context_limit, reserve, theta); the
    # node and `proassist eval` use them unless told otherwise (loader.default_settings).
    defaults: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        patch_grid_for(self.tokens_per_frame)
        if self.chat_format not in ("llama3", "chatml"):
            raise ValueError(f"chat_format must be llama3 or chatml, got {self.chat_format!r}")
        # Normalise nested configs to their JSON form (int dict keys become str, etc.) so that a
        # config compares equal to itself after a save/load round trip.
        self.llm = json.loads(json.dumps(self.llm, default=str))
        self.vision = json.loads(json.dumps(self.vision, default=str))

    @property
    def patch_grid(self) -> int:
        """n of the n×n pooled patch grid (0 for I=1)."""
        return patch_grid_for(self.tokens_per_frame)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProAssistConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ProAssistConfig:
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"missing {path}")
        return cls.from_dict(json.loads(path.read_text()))
