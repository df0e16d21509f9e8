"""One node set for bringup and the launch file; the shipped parameters file; bringup over DDS.

The launch file cannot run here (no wheel of ``launch``/``launch_ros``), so it is executed
against small stand-ins of the launch API that record what it builds, and compared with what
``proassist bringup`` passes to its in-process nodes: both must come out of nodeset.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import stop_cleanly

from proassist_ros.ros import nodeset
from proassist_ros.ros.assistant_config import PARAMS, AssistantConfig
from proassist_ros.ros.bringup import node_command, parse_args

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "proassist.yaml"


# ---- nodeset and parameters file (ROS-free) ----------------------------------------------------
def test_nodeset_is_consistent():
    names = [n.name for n in nodeset.NODES]
    assert [n.name for n in nodeset.nodes_for(nodeset.ARGUMENT_DEFAULTS)] == list(
        nodeset.CORE_NODES) == ["assistant", "tts"]
    arg_names = {a.name for a in nodeset.ARGUMENTS}
    assert len(arg_names) == len(nodeset.ARGUMENTS)
    for spec in nodeset.NODES:
        assert set(spec.arg_params) <= arg_names
        module, cls = spec.factory.split(":")
        assert importlib.util.find_spec(module) is not None, module
        assert re.search(rf"^class {cls}\b", (REPO / Path(*module.split("."))).with_suffix(".py")
                         .read_text(), re.M)
    for remap in nodeset.REMAPS:
        assert remap.arg in arg_names and set(remap.nodes) <= set(names)
    scripts = (REPO / "setup.py").read_text()
    cmake, entry = (REPO / "CMakeLists.txt").read_text(), (REPO / "scripts" / "ros_entry.py").read_text()
    for spec in nodeset.NODES:  # `ros2 run` / the launch file and bringup find the same module
        module = spec.factory.split(":")[0]
        assert f'"{spec.executable} = {module}:main"' in scripts
        assert f"RENAME {spec.executable})" in cmake, spec.executable
        assert f'"{spec.executable}": "{module}"' in entry, spec.executable
        assert not spec.enabled_by[0] or spec.enabled_by[0] in arg_names


def test_shipped_params_file_lists_every_parameter_with_its_default():
    from proassist_ros.ros.asr_node import AsrParams
    from proassist_ros.ros.mic_node import MicParams
    from proassist_ros.ros.tts_node import TtsParams

    loaded = yaml.safe_load(SHIPPED.read_text())
    assert list(loaded) == ["/**"]
    params = loaded["/**"]["ros__parameters"]
    expected = {p.name: p.default for p in PARAMS}
    for node_params in (TtsParams(), MicParams(), AsrParams()):
        assert not set(expected) & set(dataclasses.asdict(node_params))  # names must not overlap
        expected.update(dataclasses.asdict(node_params))
    assert params == expected
    for name, value in params.items():  # a 2 where a double is declared fails at start
        assert type(value) is type(expected[name]), name
    assert nodeset.default_params_file() == SHIPPED
    assert AssistantConfig.from_values({p.name: params[p.name] for p in PARAMS}) == AssistantConfig()


def test_ros_arguments_pass_only_what_was_given():
    assistant, tts = nodeset.NODES[:2]
    defaults = dict(nodeset.ARGUMENT_DEFAULTS)
    assert nodeset.ros_arguments(assistant, defaults) == [
        "--ros-args", "--params-file", str(SHIPPED)]
    given = {**defaults, "params_file": "/p.yaml", "use_sim_time": "true", "autostart": "false",
             "image_topic": "/cam/image", "guidance_topic": "/out/guidance"}
    assert nodeset.ros_arguments(assistant, given) == [
        "--ros-args", "--params-file", "/p.yaml", "-p", "use_sim_time:=true",
        "-p", "autostart:=false", "-p", "image_topic:=/cam/image",
        "-r", "guidance:=/out/guidance"]
    assert nodeset.ros_arguments(tts, given) == [
        "--ros-args", "--params-file", "/p.yaml", "-p", "use_sim_time:=true",
        "-r", "guidance:=/out/guidance"]
    assert nodeset.node_parameters(assistant, given) == {
        "use_sim_time": True, "autostart": False, "image_topic": "/cam/image"}


def test_optional_nodes_follow_their_arguments():
    names = lambda **v: [n.name for n in nodeset.nodes_for({**nodeset.ARGUMENT_DEFAULTS, **v})]  # noqa: E731
    assert names() == ["assistant", "tts"]
    assert names(example="robot_helper") == ["assistant", "tts", "robot_helper"]
    assert names(example="Robot_Helper") == ["assistant", "tts", "robot_helper"]
    assert names(example="robot_helper", wearers="a,b") == ["assistant"]
    assert names(speech="true") == ["assistant", "tts", "mic", "asr"]
    assert names(speech="", example="robot_helper") == ["assistant", "tts", "robot_helper"]
    values, _ = parse_args(["--speech", "true", "--wav", "/q.wav"])
    mic, asr = nodeset.nodes_for(values)[-2:]
    assert "wav:=/q.wav" in node_command(mic, values, []) and "wav:=/q.wav" not in node_command(
        asr, values, [])
    values, _ = parse_args(["--example", "robot_helper", "--namespace", "r1"])
    helper = nodeset.nodes_for(values)[-1]
    cmd = node_command(helper, values, [])
    assert cmd[1:3] == ["-m", "proassist_ros.examples.robot_helper"] and "__ns:=/r1" in cmd


def test_bringup_cli_arguments():
    values, ros_args = parse_args(["--namespace", "r1", "--use-sim-time", "true",
                                   "--ros-args", "--log-level", "debug"])
    assert values["namespace"] == "r1" and values["use_sim_time"] == "true"
    assert values["params_file"] == "" and set(values) == set(nodeset.ARGUMENT_DEFAULTS)
    assert ros_args == ["--ros-args", "--log-level", "debug"]


# ---- the launch file, against recording stand-ins of the launch API ----------------------------
class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorded):
    def perform(self, context: dict[str, str]) -> str:
        return context[self.args[0]]


def _fake_launch_modules(share: Path) -> dict[str, types.ModuleType]:
    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    kinds = {k: type(k, (_Recorded,), {}) for k in (
        "LaunchDescription", "DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable",
        "Node", "LifecycleNode")}
    return {
        "launch": module("launch", LaunchDescription=kinds["LaunchDescription"]),
        "launch.actions": module("launch.actions", **{k: kinds[k] for k in (
            "DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable")}),
        "launch.substitutions": module("launch.substitutions",
                                       LaunchConfiguration=_LaunchConfiguration),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=kinds["Node"],
                                     LifecycleNode=kinds["LifecycleNode"]),
        "ament_index_python": module("ament_index_python"),
        "ament_index_python.packages": module(
            "ament_index_python.packages", get_package_share_directory=lambda pkg: str(share)),
    }


@pytest.fixture
def launch_file(monkeypatch, tmp_path):
    for name, mod in _fake_launch_modules(tmp_path / "share").items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    spec = importlib.util.spec_from_file_location("proassist_launch",
                                                  REPO / "launch" / "proassist.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _launched_nodes(launch_file: Any, given: dict[str, str]) -> list[Any]:
    description = launch_file.generate_launch_description()
    actions = description.args[0]
    declared = [a for a in actions if type(a).__name__ == "DeclareLaunchArgument"]
    assert [a.args[0] for a in declared] == [a.name for a in nodeset.ARGUMENTS]
    assert [a.kwargs["default_value"] for a in declared] == [a.default for a in nodeset.ARGUMENTS]
    assert any(type(a).__name__ == "SetEnvironmentVariable" for a in actions)
    opaque = next(a for a in actions if type(a).__name__ == "OpaqueFunction")
    return opaque.kwargs["function"]({**nodeset.ARGUMENT_DEFAULTS, **given})


@pytest.mark.parametrize("given", [{}, {"namespace": "robot1", "params_file": "/p.yaml",
                                        "use_sim_time": "true", "autostart": "false",
                                        "image_topic": "/cam/image",
                                        "guidance_topic": "/out/guidance",
                                        "user_utterance_topic": "/asr/text"},
                                   {"example": "robot_helper"}])
def test_launch_file_builds_what_bringup_builds(launch_file, tmp_path, given):
    nodes = _launched_nodes(launch_file, given)
    values = {**nodeset.ARGUMENT_DEFAULTS, **given}
    assert [type(n).__name__ for n in nodes] == ["LifecycleNode", "Node"] + (
        ["Node"] if given.get("example") else [])
    assert [n.kwargs["executable"] for n in nodes][2:] == (
        ["proassist_robot_helper"] if given.get("example") else [])
    for node, spec in zip(nodes, nodeset.nodes_for(values), strict=True):
        kw = node.kwargs
        assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == (
            "proassist_ros", spec.executable, spec.name, values["namespace"])
        params_file, overrides = kw["parameters"]
        shipped = str(tmp_path / "share" / "config" / "proassist.yaml")
        assert params_file == (given.get("params_file") or shipped)
        # The same parameters and remaps as bringup's --ros-args for this node.
        bringup_args = nodeset.ros_arguments(spec, {**values, "params_file": params_file})
        launch_args = ["--ros-args", "--params-file", params_file]
        launch_args += [x for k in overrides for x in ("-p", f"{k}:={values[k]}")]
        launch_args += [x for old, new in kw["remappings"] for x in ("-r", f"{old}:={new}")]
        assert launch_args == bringup_args


# ---- bringup over DDS ---------------------------------------------------------------------------
@pytest.mark.dds
def test_bringup_runs_both_nodes_with_namespace_and_remaps(spawn, rclpy_context, tmp_path):
    """`bringup` in its own process: both nodes, namespaced, remapped, autostarted, clean exit."""
    import rclpy

    from proassist_ros.msg import AssistantStats

    params = yaml.safe_load(SHIPPED.read_text())
    params["/**"]["ros__parameters"].update(model="tiny", play_audio=False)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    proc = spawn(["-m", "proassist_ros.ros.bringup", "--params-file", str(params_file),
                  "--namespace", "robot1", "--guidance-topic", "/out/guidance",
                  "--image-topic", "/cam1/image_raw"])
    node = rclpy.create_node("bringup_probe", context=rclpy_context)
    stats: list[AssistantStats] = []
    node.create_subscription(AssistantStats, "/robot1/stats", stats.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        deadline = _deadline(45)
        while not stats and _before(deadline) and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert stats, proc.stdout.read() if proc.poll() is not None else "no stats from bringup"

        def graph_ready() -> bool:
            names = set(node.get_node_names_and_namespaces())
            subs = {i.node_name for i in node.get_subscriptions_info_by_topic("/out/guidance")}
            pubs = {i.node_name for i in node.get_publishers_info_by_topic("/out/guidance")}
            cams = {i.node_name for i in node.get_subscriptions_info_by_topic("/cam1/image_raw")}
            return ({("assistant", "/robot1"), ("tts", "/robot1")} <= names
                    and subs == {"tts"} and pubs == {"assistant"} and cams == {"assistant"})

        deadline = _deadline(20)
        while not graph_ready() and _before(deadline):
            executor.spin_once(timeout_sec=0.1)
        assert graph_ready(), sorted(node.get_node_names_and_namespaces())
        # One process per node, as the launch file runs them (docs/performance.md).
        children = _children(proc.pid)
        assert sorted(c.split(" -m ")[1].split()[0] for c in children) == sorted(
            spec.factory.split(":")[0] for spec in nodeset.nodes_for({})), children
        assert all("__ns:=/robot1" in c for c in children), children
    finally:
        executor.shutdown()
        node.destroy_node()
    stop_cleanly(proc, "bringup")


@pytest.mark.dds
def test_bringup_ends_the_set_when_a_node_fails(spawn, tmp_path):
    """A node that cannot start (a parameter out of range) ends bringup with its exit code 2."""
    proc = spawn(["-m", "proassist_ros.ros.bringup", "--ros-args", "-p", "fps:=100.0"])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "fps" in out and "assistant exited with code 2" in out, out


def _children(pid: int) -> list[str]:
    """Command lines of the direct child processes of ``pid`` (Linux /proc)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [Path(f"/proc/{k}/cmdline").read_text().replace("\0", " ") for k in kids]


def _deadline(seconds: float) -> float:
    import time

    return time.monotonic() + seconds


def _before(deadline: float) -> bool:
    import time

    return time.monotonic() < deadline
