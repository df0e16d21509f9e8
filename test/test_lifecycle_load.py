"""Lifecycle transitions while a camera floods the node: deactivate / activate twice during 640x480
frames at 30 FPS from a stock camera process. The node follows every transition, keeps its counters
consistent, and processes frames again after each activation."""

from __future__ import annotations

import pytest
from helpers import OutputDrain
from test_assistant_node import CAMERA, NODE, Probe, _lifecycle
from test_assistant_node import camera as camera  # noqa: F401 - fixture
from test_assistant_node import probe as probe  # noqa: F401 - fixture


def _fresh_stats(probe: Probe, n: int = 2):  # noqa: F811
    """The stats after ``n`` more messages (1 Hz): figures from after the call, not before."""
    seen = len(probe.stats)
    probe.wait(lambda: len(probe.stats) >= seen + n, 30, f"{n} more stats messages")
    return probe.stats[-1]


@pytest.mark.dds
def test_deactivate_and_activate_under_a_flood(spawn, camera, probe: Probe):  # noqa: F811
    from lifecycle_msgs.msg import Transition

    node = OutputDrain(spawn(NODE))
    probe.wait(lambda: probe.stats, 150, "the node to come up", on_timeout=node.text)
    cam = OutputDrain(camera([CAMERA, "--quiet", "--rate", "30", "--count", "2400", "--cycle", "4",
                              "--width", "640", "--height", "480", "--wait", "60"]))
    probe.wait(lambda: _fresh_stats(probe).frames_processed > 0, 60, "frames processed under the flood",
               on_timeout=node.text)
    for _ in range(2):
        before = _fresh_stats(probe)
        assert _lifecycle(probe, Transition.TRANSITION_DEACTIVATE) == (True, "inactive")
        assert _lifecycle(probe) == (None, "inactive")  # stays down while frames keep coming
        assert _lifecycle(probe, Transition.TRANSITION_ACTIVATE) == (True, "active")
        probe.wait(lambda b=before: _fresh_stats(probe).frames_processed > b.frames_processed, 60,
                   "frames processed again after activate", on_timeout=node.text)
    cam.proc.kill()
    s = _fresh_stats(probe, 3)
    assert s.frames_processed + s.frames_dropped + s.decode_errors <= s.frames_received
    assert node.proc.poll() is None and "Traceback" not in node.text(), node.text()
