"""The streaming assistant engine (ROS-free): sessions, θ policy, context strategies, task state."""

from .config import CONTEXT_STRATEGIES, DEFAULT_SYSTEM_PROMPT, ConfigError, EngineConfig
from .session import AssistantSession, FrameResult
from .task_state import TaskStateData

__all__ = ["AssistantSession", "CONTEXT_STRATEGIES", "ConfigError", "DEFAULT_SYSTEM_PROMPT",
           "EngineConfig", "FrameResult", "TaskStateData"]
