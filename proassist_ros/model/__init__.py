"""The ProAssist model layer (issue 3): vision tower + projector + chat LLM, streaming on a KV cache.

Public API (docs/contracts.md, docs/model.md)::

    from proassist_ros.model import load, save, ProAssistModel
    model = load("tiny", chat_format="chatml", tokens_per_frame=5, seed=0)
    state = StreamState.new()
    step = step_frame(model, state, ids, feats, theta=0.3)
"""

from proassist_ros.model.chat import ChatFormat, ChatMLChat, Llama3Chat, make_chat
from proassist_ros.model.config import ProAssistConfig
from proassist_ros.model.loader import load
from proassist_ros.model.modeling import ProAssistModel
from proassist_ros.model.streaming import (
    FrameStep,
    StreamState,
    drop_middle,
    forward_chunk,
    step_frame,
)

__all__ = [
    "ChatFormat",
    "ChatMLChat",
    "FrameStep",
    "Llama3Chat",
    "ProAssistConfig",
    "ProAssistModel",
    "StreamState",
    "drop_middle",
    "forward_chunk",
    "load",
    "make_chat",
    "save",
    "step_frame",
]


def save(model: ProAssistModel, directory) -> None:
    """Write ``model`` as an own checkpoint directory (see ``checkpoint.py``)."""
    from proassist_ros.model.checkpoint import save as _save

    _save(model, directory)
