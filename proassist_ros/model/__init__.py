"""The ProAssist model layer (issue 3): vision tower + projector + chat LLM, streaming on a KV cache.

Public API (docs/contracts.md, docs/model.md)::

    from proassist_ros.model import load, save, ProAssistModel, StreamState, step_frame
    model = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=0)
    state = StreamState.new()
    step = step_frame(model, state, ids, feats, theta=0.3)

Names are imported lazily (PEP 562) so that ``python -m proassist_ros.model.embedded --prepare``
can answer "cache ready" without importing torch and transformers (~5 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ChatFormat": "chat",
    "ChatMLChat": "chat",
    "Llama3Chat": "chat",
    "make_chat": "chat",
    "ProAssistConfig": "config",
    "load": "loader",
    "save": "checkpoint",
    "ProAssistModel": "modeling",
    "FrameStep": "streaming",
    "StreamState": "streaming",
    "drop_middle": "streaming",
    "forward_chunk": "streaming",
    "step_frame": "streaming",
    "LoraSettings": "lora",
    "add_lora": "lora",
    "merge_lora": "lora",
}

__all__ = [
    "ChatFormat",
    "ChatMLChat",
    "FrameStep",
    "Llama3Chat",
    "LoraSettings",
    "ProAssistConfig",
    "ProAssistModel",
    "StreamState",
    "add_lora",
    "drop_middle",
    "forward_chunk",
    "load",
    "make_chat",
    "merge_lora",
    "save",
    "step_frame",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from proassist_ros.model.chat import ChatFormat, ChatMLChat, Llama3Chat, make_chat
    from proassist_ros.model.checkpoint import save
    from proassist_ros.model.config import ProAssistConfig
    from proassist_ros.model.loader import load
    from proassist_ros.model.lora import LoraSettings, add_lora, merge_lora
    from proassist_ros.model.modeling import ProAssistModel
    from proassist_ros.model.streaming import (
        FrameStep,
        StreamState,
        drop_middle,
        forward_chunk,
        step_frame,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
