"""Several wearers, one model process, over DDS: ``proassist bringup --wearers alice,bob``.

Two stock camera processes (default QoS, no DDS profile of ours) publish on /alice/camera/image_raw
and /bob/camera/image_raw; each wearer's assistant speaks in its own namespace, about its own
frames, from one shared model process (runtime/model_server.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import stop_cleanly
from test_bringup import SHIPPED, _children

CAMERA = "test/helpers/camera_publisher.py"
WEARERS = {"alice": 1_700_000_000.0, "bob": 1_800_000_000.0}  # each camera's first stamp
COUNT = 6


def _camera_env(dds_env: dict[str, str]) -> dict[str, str]:
    env = dict(dds_env)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # as a user's camera runs: no profile of ours
    return env


@pytest.mark.dds
def test_two_wearers_are_served_in_their_own_namespaces_by_one_model_process(
        spawn, dds_env, rclpy_context, tmp_path):
    import rclpy

    from proassist_ros.msg import AssistantStats, Guidance

    params = yaml.safe_load(SHIPPED.read_text())
    params["/**"]["ros__parameters"].update(model="tiny", play_audio=False, theta=1.0,
                                            reply_max_tokens=3, image_reliability="reliable",
                                            catchup_depth=COUNT)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    proc = spawn(["-m", "proassist_ros.ros.bringup", "--params-file", str(params_file),
                  "--wearers", ",".join(WEARERS)])
    node = rclpy.create_node("wearers_probe", context=rclpy_context)
    guidance: dict[str, list[Guidance]] = {w: [] for w in WEARERS}
    stats: dict[str, list[AssistantStats]] = {w: [] for w in WEARERS}
    for w in WEARERS:
        node.create_subscription(Guidance, f"/{w}/proassist/guidance", guidance[w].append, 50)
        node.create_subscription(AssistantStats, f"/{w}/proassist/stats", stats[w].append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)

    def spin_until(cond, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not cond() and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert cond(), f"{what}; bringup output:\n" + (proc.stdout.read() if proc.poll() is not None else "")

    try:
        spin_until(lambda: all(stats.values()), 150, "both wearers' assistants came up")
        # One assistant process (bringup starts no TTS with --wearers) holding one model process.
        (assistant,) = _children(proc.pid)
        assert "--wearers alice,bob" in assistant and "__ns" not in assistant, assistant
        (pid,) = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        models = [c for c in _children(int(pid)) if "spawn_main" in c]
        assert len(models) == 1, _children(int(pid))  # one model server for both wearers
        cams = [subprocess.Popen(
            [sys.executable, CAMERA, "--topic", f"/{w}/camera/image_raw", "--rate", "2",
             "--count", str(COUNT), "--start", str(start), "--width", "160", "--height", "120"],
            env=_camera_env(dds_env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for w, start in WEARERS.items()]
        try:
            for cam in cams:
                out, _ = cam.communicate(timeout=120)
                assert cam.returncode == 0 and '"acked": true' in out, out
        finally:
            for cam in cams:
                if cam.poll() is None:
                    cam.kill()

        def processed(w: str) -> int:
            return stats[w][-1].frames_processed if stats[w] else 0

        spin_until(lambda: all(processed(w) == COUNT for w in WEARERS), 120,
                   f"each assistant processed its {COUNT} frames: "
                   f"{ {w: processed(w) for w in WEARERS} }")
        spin_until(lambda: all(guidance.values()), 60, "θ = 1: each wearer's assistant spoke")
        for w, start in WEARERS.items():  # about its own frames only, its own seq from 0
            own = {round(start + i / 2, 3) for i in range(COUNT)}
            assert {round(g.header.stamp.sec + g.header.stamp.nanosec * 1e-9, 3) for g in guidance[w]} <= own
            assert [g.seq for g in guidance[w]] == list(range(len(guidance[w])))
        assert {g.session_id for g in guidance["alice"]}.isdisjoint({g.session_id for g in guidance["bob"]})
    finally:
        executor.shutdown()
        node.destroy_node()
    stop_cleanly(proc, "bringup --wearers")
