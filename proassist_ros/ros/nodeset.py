"""The one definition of the proassist node set, read by both ``proassist bringup`` and the launch file.

What runs (node names, executables, classes), which user-facing arguments exist, which of them
become parameters of which node, and which topics can be remapped. ``bringup.py`` turns this into
``--ros-args`` for in-process nodes; ``launch/proassist.launch.py`` turns the same data into
launch actions, so the two ways of starting the system cannot drift (test_bringup checks both).

ROS-free on purpose (no rclpy import): the launch file imports it in ``ros2 launch``'s process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from proassist_ros.constants import GUIDANCE, NAMESPACE, TASK_STATE, USER_UTTERANCE

PACKAGE = "proassist_ros"
PARAMS_FILE = Path("config") / "proassist.yaml"


@dataclass(frozen=True)
class Argument:
    """A user-facing argument: ``--name`` of bringup, ``name:=`` of the launch file."""

    name: str
    default: str
    description: str


@dataclass(frozen=True)
class Remap:
    """A topic the nodes name ``topic`` (relative: resolved in the namespace), remappable by ``arg``."""

    topic: str
    arg: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class NodeSpec:
    """One node of the set."""

    name: str                    # node name (namespace from the ``namespace`` argument)
    executable: str              # console script / ``ros2 run proassist_ros <executable>``
    factory: str                 # "module:Class" constructed in-process by bringup
    lifecycle: bool              # a managed node (launch: LifecycleNode)
    arg_params: tuple[str, ...]  # arguments passed to this node as parameters of the same name
    enabled_by: tuple[str, str] = ("", "")  # (argument, value): started only when it has that
                                            # value (case-insensitive); ("", ""): always
    arguments: tuple[str, ...] = ()  # the executable's own arguments (before --ros-args)

    def enabled(self, values: Mapping[str, str]) -> bool:
        """Whether this node is part of the set for these argument values."""
        arg, wanted = self.enabled_by
        return not arg or values.get(arg, "").strip().lower() == wanted


# Arguments that become parameters default to "" = not given: the params file (or the node's
# own default) decides. Passing them anyway would silently override the user's params file.
ARGUMENTS: tuple[Argument, ...] = (
    Argument("params_file", "", "parameters YAML for both nodes ('': the shipped "
             "config/proassist.yaml)"),
    Argument("namespace", NAMESPACE, "namespace of both nodes and their topics"),
    Argument("use_sim_time", "", "true: use /clock (bag replay with --clock); '': params file"),
    Argument("autostart", "", "false: the assistant waits for lifecycle transitions; "
             "'': params file (default true)"),
    Argument("image_topic", "", "camera topic of the assistant; '': params file "
             "(default /camera/image_raw; compressed: <image_topic>/compressed)"),
    Argument("guidance_topic", GUIDANCE, "Guidance topic (assistant → tts)"),
    Argument("user_utterance_topic", USER_UTTERANCE, "user utterances (std_msgs/String) in"),
    Argument("task_state_topic", TASK_STATE, "TaskState topic"),
    Argument("example", "", "robot_helper: also start the example robot-side node "
             "(proassist_ros/examples/robot_helper.py: a GuideTask client that hands over what "
             "the next step needs; the set ends when the task does); '': none"),
    Argument("speech", "", "true: also start the microphone and ASR nodes (the wearer talks "
             "to the assistant and can cut it off; docs/speech.md); '': off"),
    Argument("wav", "", "with speech: the microphone plays this WAV file at real time instead "
             "of capturing (tests, demos); '': the sound card"),
    Argument("wearers", "", "comma-separated wearer names: one assistant per wearer in namespace "
             "/<wearer>/proassist, camera /<wearer><image_topic>, all on one shared model process "
             "(replaces namespace; no TTS node: each wearer's rig runs its own); '': one wearer"),
)
ARGUMENT_DEFAULTS: dict[str, str] = {a.name: a.default for a in ARGUMENTS}

REMAPS: tuple[Remap, ...] = (
    Remap(GUIDANCE, "guidance_topic", ("assistant", "tts")),
    Remap(USER_UTTERANCE, "user_utterance_topic", ("assistant",)),
    Remap(TASK_STATE, "task_state_topic", ("assistant",)),
)

NODES: tuple[NodeSpec, ...] = (
    NodeSpec("assistant", "proassist_node", "proassist_ros.ros.assistant_node:AssistantNode",
             lifecycle=True, arg_params=("use_sim_time", "autostart", "image_topic")),
    NodeSpec("tts", "proassist_tts_node", "proassist_ros.ros.tts_node:TtsNode",
             lifecycle=False, arg_params=("use_sim_time",)),
    NodeSpec("robot_helper", "proassist_robot_helper",
             "proassist_ros.examples.robot_helper:RobotHelper", lifecycle=False,
             arg_params=("use_sim_time",), enabled_by=("example", "robot_helper")),
    NodeSpec("mic", "proassist_mic_node", "proassist_ros.ros.mic_node:MicNode",
             lifecycle=False, arg_params=("use_sim_time", "wav"), enabled_by=("speech", "true")),
    NodeSpec("asr", "proassist_asr_node", "proassist_ros.ros.asr_node:AsrNode",
             lifecycle=False, arg_params=("use_sim_time",), enabled_by=("speech", "true")),
)


CORE_NODES: tuple[str, ...] = ("assistant", "tts")  # started always (one wearer)


def nodes_for(values: Mapping[str, str]) -> tuple[NodeSpec, ...]:
    """The nodes to start: the core ones plus those their arguments enable, or with ``wearers``
    only the (multi-wearer) assistant."""
    if values.get("wearers", ""):
        return NODES[:1]
    return tuple(n for n in NODES if n.enabled(values))


def node_arguments(spec: NodeSpec, values: Mapping[str, str]) -> list[str]:
    """``spec``'s executable's own arguments (before ``--ros-args``)."""
    if spec.name == "assistant" and values.get("wearers", ""):
        return ["--wearers", values["wearers"]]
    return list(spec.arguments)


def remaps_for(node: str) -> tuple[Remap, ...]:
    """The remappable topics used by ``node``."""
    return tuple(r for r in REMAPS if node in r.nodes)


def default_params_file() -> Path | None:
    """The shipped parameters file: source tree first, then the ament share directory."""
    source = Path(__file__).resolve().parents[2] / PARAMS_FILE
    if source.is_file():
        return source
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        installed = Path(prefix) / "share" / PACKAGE / PARAMS_FILE
        if installed.is_file():
            return installed
    return None


def typed(text: str) -> bool | int | float | str:
    """An argument string as the parameter value ROS would parse from ``-p name:=text``."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def node_parameters(spec: NodeSpec, values: Mapping[str, str]) -> dict[str, bool | int | float | str]:
    """Parameters that the given (non-empty) argument ``values`` set on ``spec``'s node."""
    return {name: typed(values[name]) for name in spec.arg_params if values.get(name, "") != ""}


def node_remaps(spec: NodeSpec, values: Mapping[str, str]) -> list[tuple[str, str]]:
    """(from, to) remaps of ``spec``'s node; arguments left at their defaults remap nothing."""
    merged = {**ARGUMENT_DEFAULTS, **values}
    return [(r.topic, merged[r.arg]) for r in remaps_for(spec.name)
            if merged[r.arg] and merged[r.arg] != r.topic]


def check_params_file(path: str | Path) -> None:
    """A ROS 2 parameters YAML, or a ValueError naming the file and what is wrong.

    Why: rcl accepts a file that holds no parameters at all (a scalar, a list, a typo'd key) and
    the nodes then start silently on their defaults."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"params file {path} is not YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"params file {path}: expected node names (e.g. /**) mapping to "
                         "{ros__parameters: {...}}, found " + type(data).__name__)
    for name, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("ros__parameters"), dict):
            raise ValueError(f"params file {path}: {name!r} has no 'ros__parameters' mapping")


def check_params_files(argv: list[str]) -> None:
    """:func:`check_params_file` for every ``--params-file F`` in ``argv``."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--params-file":
            check_params_file(argv[i + 1])


def params_file(values: Mapping[str, str]) -> str:
    """The parameters file in force: the given one, else the shipped one ('' if not found)."""
    return values.get("params_file", "") or str(default_params_file() or "")


def ros_arguments(spec: NodeSpec, values: Mapping[str, str]) -> list[str]:
    """``--ros-args`` that configure ``spec``'s node as the launch file would."""
    args = ["--ros-args"]
    if params_file(values):
        args += ["--params-file", params_file(values)]
    for name in node_parameters(spec, values):
        args += ["-p", f"{name}:={values[name]}"]
    for old, new in node_remaps(spec, values):
        args += ["-r", f"{old}:={new}"]
    return args
