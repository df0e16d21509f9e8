"""Parameters of the assistant node: one table, declared once, read into a typed frozen config.

Also where a configuration becomes an engine session (:func:`open_session`).

The table (:data:`PARAMS`) is the single source for the node's declarations (with descriptors
and ranges), for validation at configure time and at run time, for ``config/proassist.yaml``
(checked by test_bringup) and for the README. The module imports no rclpy at import time, so the
launch file, bringup and ROS-free tests can read the table too.

Parameters marked ``runtime`` take effect while the node runs (θ, the engine policies, fps,
frame_id); the others are read at configure time and may only change while the node is
unconfigured (``cleanup`` first), because they shape the model, the session or the
subscriptions.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proassist_ros.constants import DEFAULT_QUANTIZE, IMAGE_TOPIC, QUANTIZE_CHOICES
from proassist_ros.model.lookup import DRAFT_MAX, LOOKAHEAD_MAX

if TYPE_CHECKING:
    from rclpy.node import Node

    from proassist_ros.engine import EngineConfig

Value = bool | int | float | str
# The smallest context_limit the node takes: room for the system prompt, a recipe and some frames
# below L − reserve. Every accepted limit makes a valid EngineConfig under every strategy (the
# engine's own floor, engine.config.MIN_CONTEXT_LIMIT, is lower: 64, for tests).
MIN_CONTEXT_LIMIT = 256


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type is the parameter's type), meaning, constraints."""

    name: str
    default: Value
    description: str
    runtime: bool = False
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "embedded",
              "proassist_ros.model.load spec: 'embedded', 'tiny' (random, tests) or a checkpoint dir"),
    ParamSpec("device", "auto", "torch device: 'auto' (cuda if available, else cpu), 'cpu', 'cuda:0'"),
    ParamSpec("dtype", "auto", "model dtype", choices=("auto", "float32", "float16", "bfloat16")),
    ParamSpec("quantize", DEFAULT_QUANTIZE, "auto: int8 on CPU for an fp32 model, else none; int8: the "
              "LLM's decoder Linear layers as weight-only int8 (CPU only; replies ~1.6x faster, decisions "
              "checked against fp32 in docs/performance.md); none: fp32", choices=QUANTIZE_CHOICES),
    ParamSpec("model_process", True, "run the model in a process of its own, so ROS callbacks never "
              "hold its GIL (docs/performance.md); false: in the node's process"),
    ParamSpec("torch_threads", 0, "CPU threads of the model: torch intra-op and the native int8 products; "
              "0: auto = usable cores - 1 (>= 1; <= 4 for the int8 products), leaving a core to ROS "
              "(docs/performance.md)", low=0, high=256),
    ParamSpec("fps", 2.0, "frames per second of stream time fed to the model (by header stamps)",
              runtime=True, low=0.1, high=30.0),
    ParamSpec("theta", -1.0, "talk threshold θ: silent iff P(silence) > θ (1.0: never silent); "
              "negative: the model's own θ (the embedded model's was chosen on validation; else 0.3)",
              runtime=True, low=-1.0, high=1.0),
    ParamSpec("context_limit", 0, "KV-cache length (tokens) that triggers context management; "
              "0: the model's own (the embedded model was trained with 1024; else 4096); else "
              f">= {MIN_CONTEXT_LIMIT}, with the reserve and Drop-Middle's keep-last scaled to it",
              low=0, high=131072),
    ParamSpec("context_strategy", "ips", "what happens at the context limit",
              choices=("ips", "drop_middle", "drop_all")),
    ParamSpec("ips_background", True, "write an IPS progress summary in a background thread while "
              "frames go on deciding inside the reserve, then take the new context (no stall; "
              "docs/engine.md); false: the paper's synchronous IPS, the stream waits for the summary"),
    ParamSpec("image_topic", IMAGE_TOPIC,
              "camera topic; with transport=compressed '<image_topic>/compressed' is used"),
    ParamSpec("transport", "raw", "image transport", choices=("raw", "compressed")),
    ParamSpec("image_reliability", "auto",
              "camera subscription reliability; auto: reliable when every publisher on the topic "
              "offers reliable, else best_effort (re-decided when the publishers change)",
              choices=("auto", "best_effort", "reliable")),
    ParamSpec("image_depth", 30, "camera subscription queue depth (frames kept in DDS until the "
              "callback takes them; the fps gate and catch-up backlog come after it)",
              low=1, high=100),
    ParamSpec("catchup_depth", 8, "sampled frames kept while inference is busy; they enter the context "
              "together and only the newest may speak (1: latest frame wins)", low=1, high=64),
    ParamSpec("system_prompt", "", "system prompt; empty: the engine's default"),
    ParamSpec("knowledge_file", "", "task knowledge (recipe text) loaded at configure; empty: none"),
    ParamSpec("state_file", "", "where the session's state (task, progress summary, step, seq, "
              "counters) is written atomically on every change, and resumed from at configure after "
              "a crash (docs/reliability.md); empty: not kept"),
    ParamSpec("reply_max_tokens", 100, "cap on the tokens of one reply (assistant header included)",
              runtime=True, low=1, high=1024),
    ParamSpec("reply_lookahead", DRAFT_MAX, "tokens guessed from the context per reply forward "
              "(prompt lookup, model/lookup.py): the same greedy reply in fewer forwards; 0: off",
              runtime=True, low=0, high=LOOKAHEAD_MAX),
    ParamSpec("min_gap_s", 0.0, "minimum stream time between two utterances (0: off)",
              runtime=True, low=0.0, high=3600.0),
    ParamSpec("talk_budget_per_min", 0, "max utterances per minute of stream time (0: unlimited)",
              runtime=True, low=0, high=600),
    ParamSpec("suppress_repeats", False, "drop an utterance that repeats the previous one",
              runtime=True),
    ParamSpec("frame_id", "", "frame_id for outputs; empty: copied from the triggering frame",
              runtime=True),
    ParamSpec("autostart", True, "configure and activate at start (no lifecycle manager needed)"),
)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
RUNTIME_PARAMS = frozenset(p.name for p in PARAMS if p.runtime)
# Parameters passed to EngineConfig under the same name: the run-time policies (applied live
# through AssistantSession.update_config) and the configure-time context settings.
ENGINE_POLICIES = ("theta", "reply_max_tokens", "reply_lookahead", "min_gap_s", "talk_budget_per_min",
                   "suppress_repeats")
ENGINE_SETUP = ("context_limit", "context_strategy", "ips_background")


@dataclass(frozen=True)
class AssistantConfig:
    """The node's validated configuration (field names = parameter names)."""

    model: str = "embedded"
    device: str = "auto"
    dtype: str = "auto"
    quantize: str = DEFAULT_QUANTIZE
    model_process: bool = True
    torch_threads: int = 0
    fps: float = 2.0
    theta: float = -1.0
    context_limit: int = 0
    context_strategy: str = "ips"
    ips_background: bool = True
    image_topic: str = IMAGE_TOPIC
    transport: str = "raw"
    image_reliability: str = "auto"
    image_depth: int = 30
    catchup_depth: int = 8
    system_prompt: str = ""
    knowledge_file: str = ""
    state_file: str = ""
    reply_max_tokens: int = 100
    reply_lookahead: int = DRAFT_MAX
    min_gap_s: float = 0.0
    talk_budget_per_min: int = 0
    suppress_repeats: bool = False
    frame_id: str = ""
    autostart: bool = True

    @property
    def subscribed_image_topic(self) -> str:
        """The topic actually subscribed (image_transport naming for compressed)."""
        base = self.image_topic.rstrip("/")
        return f"{base}/compressed" if self.transport == "compressed" else base

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> AssistantConfig:
        """Validate ``values`` (name → value; missing names take defaults); ValueError names the bad one."""
        unknown = set(values) - set(SPECS)
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        for name, value in values.items():
            problem = check_value(name, value)
            if problem:
                raise ValueError(problem)
        if not values.get("model", "embedded").strip():
            raise ValueError("parameter 'model' is empty: give 'embedded', 'tiny' or a checkpoint dir")
        return cls(**{k: float(v) if isinstance(SPECS[k].default, float) else v
                      for k, v in values.items()})

    def with_changes(self, changes: dict[str, Any]) -> AssistantConfig:
        """A copy with validated changes applied."""
        return AssistantConfig.from_values({**dataclasses.asdict(self), **changes})

    def engine_config(self, model_defaults: dict[str, Any] | None = None) -> EngineConfig:
        """The engine's configuration for this node configuration; θ < 0 and context_limit 0 take
        the model's own settings (``model.loader.default_settings``), else 0.3 and 4096."""
        from proassist_ros.engine import EngineConfig
        from proassist_ros.engine.config import model_settings

        kwargs = {name: getattr(self, name) for name in (*ENGINE_POLICIES, *ENGINE_SETUP)}
        # θ and L resolved, the reserve and keep-last derived (engine.config.context_budget)
        kwargs.update(model_settings(self.theta, self.context_limit, model_defaults or {},
                                     strategy=self.context_strategy))
        if self.system_prompt:  # '' keeps the engine's default prompt
            kwargs["system_prompt"] = self.system_prompt
        return EngineConfig(**kwargs)


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name``; None when it is."""
    spec = SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    expected = type(spec.default)
    ok_type = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok_type, value = True, float(value)
    if not ok_type:
        return f"parameter {name!r} must be {expected.__name__}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"parameter {name!r} must be finite, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"parameter {name!r} must be one of {', '.join(spec.choices)}; got {value!r}"
    if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
        return f"parameter {name!r} must be in [{spec.low}, {spec.high}], got {value!r}"
    if name == "context_limit" and 0 < value < MIN_CONTEXT_LIMIT:
        return f"parameter 'context_limit' must be 0 (the model's) or ≥ {MIN_CONTEXT_LIMIT}, got {value!r}"
    return None


def parse_wearers(args: list[str]) -> list[str]:
    """``--wearers a,b`` (or ``--wearers=a,b``) from the non-ROS arguments: valid, distinct names."""
    p = argparse.ArgumentParser(prog="proassist_node", add_help=False)
    p.add_argument("--wearers", default="")
    known, rest = p.parse_known_args(args)
    if rest:
        raise ValueError(f"unknown arguments {rest} (only --wearers a,b,... and --ros-args ...)")
    names = [w.strip() for w in known.wearers.split(",") if w.strip()]
    bad = [w for w in names if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", w)]
    if bad:
        raise ValueError(f"--wearers: {bad} are not valid ROS namespace names (a letter, then letters, "
                         "digits or _)")
    if len(set(names)) != len(names):
        raise ValueError(f"--wearers: a name appears twice in {names}")
    return names


def declare_parameters(node: Node) -> None:
    """Declare every parameter of :data:`PARAMS` on ``node``, with descriptors and ranges."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    for spec in PARAMS:
        desc = ParameterDescriptor(description=spec.description)
        constraints = []
        if spec.choices:
            constraints.append(f"one of: {', '.join(spec.choices)}")
        if not spec.runtime:
            constraints.append("changes only while unconfigured (takes effect at configure)")
        desc.additional_constraints = "; ".join(constraints)
        if isinstance(spec.default, float) and spec.low is not None:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.low is not None:
            desc.integer_range = [IntegerRange(
                from_value=int(spec.low), to_value=int(spec.high), step=1)]
        node.declare_parameter(spec.name, spec.default, desc)


def read_config(node: Node) -> AssistantConfig:
    """Read the declared parameters of ``node`` into a validated :class:`AssistantConfig`."""
    return AssistantConfig.from_values({p.name: node.get_parameter(p.name).value for p in PARAMS})


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when a GPU is usable, else 'cpu'; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def change_problem(name: str, value: Any, current: AssistantConfig | None) -> str | None:
    """Why a run-time ``set_parameters`` of ``name`` must be refused; None to accept it.

    Names this node does not own (``use_sim_time``, QoS overrides) are accepted untouched.
    Configure-time parameters may change only while unconfigured (``current`` is None).
    """
    if name not in SPECS:
        return None
    problem = check_value(name, value)
    if problem is None and current is not None and name not in RUNTIME_PARAMS \
            and value != getattr(current, name):
        problem = f"{name} takes effect at configure: cleanup the node first"
    return problem


def start_session(cfg: AssistantConfig, engine_cfg: EngineConfig, knowledge: str = "",
                  server: Any = None, key: str = "") -> Any:
    """The node's session: on the shared model ``server`` (several wearers, one process) when
    given, else :func:`open_session` in a process of its own (``model_process``) or in this one."""
    if server is not None:
        return server.open(key, (cfg,), (engine_cfg, knowledge), model_identity(cfg))
    if not cfg.model_process:
        return open_session(cfg, engine_cfg, knowledge)
    from proassist_ros.runtime.session_process import RemoteSession

    return RemoteSession(f"{__name__}:open_session", cfg, engine_cfg, knowledge)


def model_identity(cfg: AssistantConfig) -> tuple:
    """What wearers sharing one model server must agree on."""
    return (cfg.model, cfg.device, cfg.dtype, cfg.quantize, cfg.torch_threads)


def open_session(cfg: AssistantConfig, engine_cfg: EngineConfig, knowledge: str = "") -> Any:
    """Load the model of ``cfg``, warm it up and return a fresh engine session."""
    return new_session(load_model(cfg), engine_cfg, knowledge)


def load_model(cfg: AssistantConfig) -> Any:
    """Load the model of ``cfg`` and warm it up.

    The warm-up runs one spoken frame of a throwaway task, so the first camera frames do not pay
    one-time costs (lazy loads such as the step matcher, first kernels) and overrun the 1/fps
    budget.
    """
    import numpy as np

    from proassist_ros.engine import AssistantSession, EngineConfig
    from proassist_ros.model import load
    from proassist_ros.runtime.threads import apply_torch_threads

    apply_torch_threads(cfg.torch_threads)
    model = load(cfg.model, device=resolve_device(cfg.device),
                 dtype=cfg.dtype, quantize=cfg.quantize)
    warm = AssistantSession(model, EngineConfig(theta=1.0, reply_max_tokens=4))
    warm.set_task("warm up", steps=("look", "act"))
    warm.push_frame(np.zeros((64, 64, 3), np.uint8), 0.0)
    return model


def new_session(model: Any, engine_cfg: EngineConfig, knowledge: str = "") -> Any:
    """A fresh engine session on ``model``; ``knowledge`` (the knowledge_file text), when given,
    becomes its task."""
    from proassist_ros.engine import AssistantSession

    session = AssistantSession(model, engine_cfg)
    if knowledge:
        session.set_task("", knowledge=knowledge)
    return session
