"""The example robot-side node (examples/robot_helper.py) against the real assistant over DDS.

Three processes: the assistant (tiny model), the robot helper (its task from the shipped sample
bag test_0005_assemble_lamp), and this test, which plays the sample bag's camera and user turns
(as the wearer's rig would send them), marks a step as a robot sensor would, and finally says
"I'm done" as the wearer. The helper must follow the steps, hand over what they name, and exit 0
once the GuideTask result says completed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import OutputDrain, wait_until
from test_assistant_node import Probe, run_camera, start_node
from test_assistant_node import camera as camera  # noqa: F401 - fixture
from test_assistant_node import probe as probe  # noqa: F401 - fixture

from proassist_ros.examples.robot_helper import objects_in
from proassist_ros.srv import MarkStep

pytestmark = pytest.mark.dds

BAG = Path(__file__).resolve().parents[1] / "samples" / "test_0005_assemble_lamp"
HELPER = ["-m", "proassist_ros.examples.robot_helper", "--ros-args", "-r", "__ns:=/proassist",
          "-p", "hand_over_s:=0.2"]
WAIT_S = 90.0


def test_objects_named_by_steps():
    assert objects_in("Screw the light bulb into the holder.") == ["light bulb"]
    assert objects_in("Screw the pole into the lamp base.") == ["lamp base", "pole"]
    assert objects_in("Put a tea bag into the cup.") == ["tea bag", "cup"]
    assert objects_in("Switch the lamp on.") == []


def test_robot_helper_follows_a_guided_task_to_its_end(spawn, probe: Probe, camera):
    from std_msgs.msg import String

    from proassist_ros.ros.player import play

    node = start_node(spawn, probe, "-p", "transport:=compressed", camera=camera,
                      camera_args=("--encoding", "jpeg"))
    helper = OutputDrain(spawn(HELPER))
    wait_until(lambda: helper.has("step 1/5: Screw the pole into the lamp base."), WAIT_S,
               "the helper's goal and first feedback", on_timeout=helper.text)
    wait_until(lambda: helper.has("handed over the pole") and helper.has("handed over the lamp base"),
               WAIT_S, "the hand-overs for step 1", on_timeout=helper.text)
    # The wearer's rig: the sample bag's frames and questions, 8x faster than recorded.
    published = play(probe.node, BAG, rate=8.0, reliable_images=True,
                     topics=["/camera/image_raw/compressed", "/proassist/user_utterance"])
    assert published > 200
    # A robot sensor saw the pole mounted: the helper moves on and fetches the bulb.
    reply = probe.call(MarkStep, "/proassist/mark_step",
                       MarkStep.Request(step_index=0, done=True, source="robot_camera"))
    assert reply.success, reply.message
    wait_until(lambda: helper.has("handed over the light bulb"), WAIT_S, "the bulb's hand-over",
               on_timeout=helper.text)
    assert helper.proc.poll() is None  # the task is not over: still guiding
    said = probe.node.create_publisher(String, "/proassist/user_utterance", 10)
    wait_until(lambda: said.get_subscription_count() > 0, WAIT_S, "the node's utterance subscription")
    said.publish(String(data="I'm done."))
    # The turn enters the stream before the next processed frame: a few more frames, stamped
    # after the bag's.
    run_camera(camera, node, "--encoding", "jpeg", "--count", "6", "--start", "1700000200")
    wait_until(lambda: helper.proc.poll() is not None, WAIT_S, "the helper's exit",
               on_timeout=helper.text)
    assert helper.proc.returncode == 0, helper.text()
    assert helper.has("task completed"), helper.text()
