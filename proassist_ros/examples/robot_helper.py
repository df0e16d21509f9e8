"""A robot beside the wearer: starts a guided task, follows it, and hands over what the next step needs.

What a robot's mission executive or behaviour tree does with the assistant (docs/integration.md):

1. send a ``GuideTask`` goal (goal, recipe, steps) to ``guide_task``;
2. follow the feedback (the TaskState): when the step in progress names an object from the
   robot's table (``OBJECTS``), fetch it and hand it over — here through ``hand_over``, a
   stand-in HandOver action that this node also serves (a real robot serves its own skill);
3. stop when the result arrives (the wearer said they are done, every step was marked, or the
   goal was canceled or superseded). Exit code 0 when the task was completed, 1 otherwise.

The task comes from parameters: ``task_bag`` (a dataset bag's /proassist/task, default the
shipped sample ``test_0005_assemble_lamp``), or ``goal`` + ``knowledge_file`` / ``steps``.
Started by ``proassist bringup --example robot_helper`` and ``example:=robot_helper`` (launch),
or on its own: ``python -m proassist_ros.examples.robot_helper --ros-args -r __ns:=/proassist``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.action import ActionClient, ActionServer
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from proassist_ros.action import GuideTask, HandOver
from proassist_ros.constants import GUIDE_TASK, NAMESPACE
from proassist_ros.msg import TaskState

# object named in a step -> where the robot fetches it (longest names are matched first)
OBJECTS: dict[str, str] = {
    "kettle": "kitchen counter", "tea box": "shelf", "tea bag": "shelf", "coffee jar": "shelf",
    "cup": "cupboard", "mug": "cupboard", "bowl": "cupboard", "spoon": "drawer",
    "cereal box": "shelf", "milk": "fridge", "banana": "fruit basket", "tomato": "fridge",
    "cucumber": "fridge", "olive oil": "shelf", "salt": "shelf", "glass": "cupboard",
    "pill box": "bathroom cabinet", "watering can": "balcony", "light bulb": "toolbox",
    "lampshade": "storage box", "lamp base": "storage box", "pole": "storage box",
    "screwdriver": "toolbox", "power strip": "desk",
}
DEFAULT_TASK_BAG = "test_0005_assemble_lamp"
RESULT_NAMES = {GuideTask.Result.STATUS_COMPLETED: "completed", GuideTask.Result.STATUS_ABORTED: "aborted",
                GuideTask.Result.STATUS_CANCELED: "canceled", GuideTask.Result.STATUS_SUPERSEDED: "superseded"}


def objects_in(step: str) -> list[str]:
    """The table's objects named in ``step``, longest names first, none counted twice."""
    found, text = [], f" {step.lower()} "
    for name in sorted(OBJECTS, key=len, reverse=True):
        if f" {name}" in text and not any(name in f for f in found):
            found.append(name)
    return found


@dataclasses.dataclass(frozen=True)
class HelperParams:
    task_bag: str = ""           # '' and no goal: the shipped sample DEFAULT_TASK_BAG
    goal: str = ""
    knowledge_file: str = ""
    steps: tuple[str, ...] = ()
    reset_context: bool = True
    hand_over_s: float = 1.0     # how long the stand-in hand-over takes
    server_timeout_s: float = 120.0


def load_goal(p: HelperParams) -> GuideTask.Goal:
    """The goal from the parameters; ValueError / FileNotFoundError naming what is wrong."""
    if p.goal or p.steps or p.knowledge_file:
        knowledge = Path(p.knowledge_file).read_text() if p.knowledge_file else ""
        return GuideTask.Goal(goal=p.goal, knowledge=knowledge, steps=list(p.steps),
                              reset_context=p.reset_context)
    from proassist_ros.data.dataset_read import read_episode
    from proassist_ros.demo import sample_bag

    episode = read_episode(sample_bag(p.task_bag or DEFAULT_TASK_BAG))
    if episode.task is None:
        raise ValueError(f"bag {p.task_bag} has no task (/proassist/task)")
    t = episode.task
    return GuideTask.Goal(goal=t.goal, knowledge=t.knowledge, steps=list(t.steps),
                          step_groups=list(t.step_groups), reset_context=p.reset_context)


class RobotHelper(Node):
    """The example robot: a GuideTask client and a HandOver server + client."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("namespace", NAMESPACE)
        super().__init__("robot_helper", **kwargs)
        self.params = declare_params(self)
        group = ReentrantCallbackGroup()
        self._guide = ActionClient(self, GuideTask, GUIDE_TASK, callback_group=group)
        self._hand_over_server = ActionServer(self, HandOver, "hand_over", self._serve_hand_over,
                                              callback_group=group)
        self._hand_over = ActionClient(self, HandOver, "hand_over", callback_group=group)
        self._goal = load_goal(self.params)  # a bad task fails here, at start, named
        self._step = -2
        self._handed: set[str] = set()
        self.hand_overs: list[str] = []
        self.exit_code: int | None = None  # set when the guided task has ended
        self._waited = 0.0
        self._timer = None

    # ---- the guided task ----------------------------------------------------------------------
    def autostart(self) -> None:
        """Called by run_nodes before spinning: send the goal once the action server is there."""
        self._timer = self.create_timer(0.5, self._send_when_ready)

    def _send_when_ready(self) -> None:
        if not self._guide.server_is_ready():
            self._waited += 0.5
            if self._waited >= self.params.server_timeout_s:
                self.get_logger().error(
                    f"no GuideTask server on {self.resolve_topic_name(GUIDE_TASK)} after "
                    f"{self.params.server_timeout_s:g} s: is the assistant running and configured?")
                self._end(1)
            return
        self.destroy_timer(self._timer)
        goal = self._goal
        self.get_logger().info(f"starting guided task {goal.goal!r} ({len(goal.steps)} steps)")
        self._guide.send_goal_async(goal, feedback_callback=self._on_feedback).add_done_callback(
            self._on_goal_response)

    def _end(self, code: int) -> None:
        """The guided task ended: stop spinning (run_nodes cleans up), exit with ``code``."""
        if self.exit_code is None:
            self.exit_code = code
        self.context.try_shutdown()

    def _on_goal_response(self, future: Any) -> None:
        handle = future.result()
        if not handle.accepted:
            self.get_logger().error("the assistant rejected the goal")
            self._end(1)
            return
        handle.get_result_async().add_done_callback(self._on_result)
        self.get_logger().info(
            "goal accepted; it ends when the wearer says they are done, when every step is marked "
            f"done ({self.resolve_topic_name('mark_step')}), or when it is canceled or superseded")

    def _on_feedback(self, msg: Any) -> None:
        state: TaskState = msg.feedback.state
        step = max(state.current_step_index, 0)  # -1: nothing started, the first step is next
        if step == self._step or not state.steps:
            return
        self._step = step
        done = ", ".join(str(i) for i in state.completed_steps) or "none"
        self.get_logger().info(f"step {step + 1}/{len(state.steps)}: {state.steps[step]} "
                               f"(done: {done}; progress {max(state.progress, 0):.0%})")
        for name in objects_in(state.steps[step]):
            if name not in self._handed:
                self._handed.add(name)
                self._send_hand_over(name)

    def _on_result(self, future: Any) -> None:
        result = future.result().result
        self.get_logger().info(
            f"task {RESULT_NAMES.get(result.status, result.status)}: {result.message}; "
            f"{len(result.completed_steps)}/{result.steps_total} steps, {result.guidance_count} "
            f"utterances, {result.elapsed_s:.1f} s; hand-overs: {', '.join(self.hand_overs) or 'none'}")
        self._end(0 if result.status == GuideTask.Result.STATUS_COMPLETED else 1)

    # ---- the stand-in hand-over skill ---------------------------------------------------------
    def _send_hand_over(self, name: str) -> None:
        self.get_logger().info(f"fetching the {name} from the {OBJECTS[name]}")
        self._hand_over.send_goal_async(HandOver.Goal(object_name=name, location=OBJECTS[name]))

    def _serve_hand_over(self, handle: Any) -> HandOver.Result:
        """Stand-in for a real skill: progress over ``hand_over_s``, then success."""
        steps = 4
        for i in range(1, steps + 1):
            time.sleep(self.params.hand_over_s / steps)  # the robot moving, simulated
            handle.publish_feedback(HandOver.Feedback(progress=i / steps))
        handle.succeed()
        self.hand_overs.append(handle.request.object_name)
        self.get_logger().info(f"handed over the {handle.request.object_name}")
        return HandOver.Result(success=True, message=f"{handle.request.object_name} handed over")


def declare_params(node: Node) -> HelperParams:
    """Declare the parameters once (read-only) and read them into a HelperParams."""
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import ParameterUninitializedException
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for f in dataclasses.fields(HelperParams):
        default = getattr(HelperParams(), f.name)
        desc = ParameterDescriptor(read_only=True)
        if isinstance(default, tuple):  # a string array: its type cannot be inferred from ()
            node.declare_parameter(f.name, Parameter.Type.STRING_ARRAY, desc)
            try:
                values[f.name] = tuple(node.get_parameter(f.name).value or ())
            except ParameterUninitializedException:
                values[f.name] = ()
        else:
            values[f.name] = node.declare_parameter(f.name, default, desc).value
    return HelperParams(**values)


def main(args: list[str] | None = None) -> int:
    """Run until the guided task ends: 0 when it was completed (or on SIGINT / SIGTERM before it
    ended), 1 when it ended otherwise, 2 on a bad task or parameter."""
    from proassist_ros.ros.dds_profile import apply_default_profile
    from proassist_ros.ros.spin import run_nodes

    apply_default_profile()
    rclpy.init(args=args)
    nodes: list[RobotHelper] = []

    def make() -> list[RobotHelper]:
        nodes.append(RobotHelper())
        return nodes

    code = run_nodes("robot_helper", make, MultiThreadedExecutor(num_threads=3))
    if code or not nodes or nodes[0].exit_code is None:
        return code  # could not start (2), or stopped by a signal before the task ended (0)
    return nodes[0].exit_code


if __name__ == "__main__":
    sys.exit(main())
