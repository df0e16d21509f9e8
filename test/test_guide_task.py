"""The GuideTask action and the mark_step service over real DDS, as a robot's executive uses them.

The assistant (`proassist_node`, tiny model) runs in its own process; this test's node is the
robot side: an rclpy ActionClient with default QoS, the mark_step and set_task services, the
user_utterance topic. Every wait is on a message or a result, with deadlines that only bound a
hung test.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import wait_until
from test_assistant_node import Probe, run_camera, start_node
from test_assistant_node import camera as camera  # noqa: F401 - fixture
from test_assistant_node import probe as probe  # noqa: F401 - fixture

from proassist_ros.action import GuideTask
from proassist_ros.msg import TaskState
from proassist_ros.srv import MarkStep, SetTask

pytestmark = pytest.mark.dds

R = GuideTask.Result
STEPS = ["Fill the kettle", "Boil the water", "Pour the water into the mug"]
WAIT_S = 60.0


class Robot:
    """The robot side: sends goals, keeps each goal's feedback and result."""

    def __init__(self, probe: Probe) -> None:
        from rclpy.action import ActionClient

        self.probe = probe
        self.client = ActionClient(probe.node, GuideTask, "/proassist/guide_task")
        assert self.client.wait_for_server(timeout_sec=WAIT_S), "guide_task not available"

    def send(self, goal: str, steps: list[str] = STEPS, **kw: Any) -> dict[str, Any]:
        run: dict[str, Any] = {"feedback": []}
        future = self.client.send_goal_async(
            GuideTask.Goal(goal=goal, steps=steps, **kw),
            feedback_callback=lambda fb: run["feedback"].append(fb.feedback.state))
        self.probe.wait(future.done, WAIT_S, f"goal {goal!r} answered")
        run["handle"] = handle = future.result()
        assert handle.accepted, f"goal {goal!r} rejected"
        run["result"] = handle.get_result_async()
        return run

    def result(self, run: dict[str, Any]) -> Any:
        self.probe.wait(run["result"].done, WAIT_S, "the goal's result")
        return run["result"].result().result

    def feedback(self, run: dict[str, Any], pred: Any, what: str) -> TaskState:
        return self.probe.wait(lambda: next((s for s in run["feedback"] if pred(s)), None),
                               WAIT_S, what, lambda: f"feedback so far: {run['feedback']}\n"
                               f"node:\n{self.node_log.text()}")

    def mark(self, index: int, done: bool = True, source: str = "robot_arm") -> Any:
        return self.probe.call(MarkStep, "/proassist/mark_step",
                               MarkStep.Request(step_index=index, done=done, source=source))


@pytest.fixture
def robot(spawn, probe, camera):
    r = Robot.__new__(Robot)
    r.node_log = start_node(spawn, probe, camera=camera)  # primed: cameras match it reliable
    Robot.__init__(r, probe)
    yield r
    r.client.destroy()


def test_goal_feedback_mark_step_and_completion(robot, probe):
    run = robot.send("I want to make tea")
    first = robot.feedback(run, lambda s: s.steps == STEPS, "first feedback with the steps")
    assert first.status == TaskState.STATUS_ACTIVE and list(first.completed_steps) == []
    reply = robot.mark(0)
    assert reply.success and list(reply.state.completed_steps) == [0], reply.message
    robot.feedback(run, lambda s: list(s.completed_steps) == [0] and s.current_step_index == 1,
                   "feedback after step 0 was marked")
    bad = robot.mark(7)
    assert not bad.success and "step_index 7 is not a step of this task (3 steps: 0..2)" in bad.message
    assert not run["result"].done()  # marks move the state; they never end the goal by themselves
    robot.mark(1)
    robot.mark(2)
    result = robot.result(run)
    assert result.status == R.STATUS_COMPLETED, result.message
    assert (list(result.completed_steps), result.steps_total) == ([0, 1, 2], 3)
    assert result.session_id == first.session_id
    probe.wait(lambda: probe.states and probe.states[-1].status == TaskState.STATUS_COMPLETED,
               WAIT_S, "the latched TaskState says completed")


def test_supersede_by_goal_and_by_set_task_then_cancel(robot, probe):
    a = robot.send("Make tea")
    robot.feedback(a, lambda s: s.goal == "Make tea", "goal A's feedback")
    b = robot.send("Water the plants", steps=["Fill the can", "Water the plants"])
    result_a = robot.result(a)
    assert result_a.status == R.STATUS_SUPERSEDED, result_a.message
    robot.feedback(b, lambda s: s.goal == "Water the plants", "goal B's feedback")
    reply = probe.call(SetTask, "/proassist/set_task", SetTask.Request(goal="Assemble the lamp"))
    assert reply.success
    result_b = robot.result(b)
    assert result_b.status == R.STATUS_SUPERSEDED and "set_task" in result_b.message

    c = robot.send("Take the medicine", steps=["Open the box", "Take a pill"])
    robot.feedback(c, lambda s: s.goal == "Take the medicine", "goal C's feedback")
    cancel = c["handle"].cancel_goal_async()
    probe.wait(cancel.done, WAIT_S, "the cancel reply")
    assert len(cancel.result().goals_canceling) == 1
    result_c = robot.result(c)
    assert result_c.status == R.STATUS_CANCELED
    assert c["result"].result().status == 5  # action_msgs GoalStatus.STATUS_CANCELED
    probe.wait(lambda: probe.states and probe.states[-1].goal == "Take the medicine"
               and probe.states[-1].status == TaskState.STATUS_ABORTED, WAIT_S,
               "the canceled task's state: aborted")


def test_a_goal_completes_when_the_wearer_says_done(robot, probe, camera):
    from std_msgs.msg import String

    run = robot.send("I want to make tea")
    robot.feedback(run, lambda s: s.goal == "I want to make tea", "the goal's feedback")
    pub = probe.node.create_publisher(String, "/proassist/user_utterance", 10)
    wait_until(lambda: pub.get_subscription_count() > 0, WAIT_S, "the node's utterance subscription")
    pub.publish(String(data="Okay, I'm done."))
    # The turn enters the stream with the next processed frame: the goal is still running.
    assert not run["result"].done()
    run_camera(camera, robot.node_log, "--count", "6")
    result = robot.result(run)
    assert result.status == R.STATUS_COMPLETED, result.message
    assert list(result.completed_steps) == [0, 1, 2]
