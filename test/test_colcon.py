"""The path ROS users take: `colcon build` of the package in a workspace, against the venv underlay."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
_IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", ".cache",
                                 "__pycache__", "*.egg-info", "demo_output", "bench_output")


@pytest.mark.slow
def test_colcon_build_and_import(tmp_path: Path):
    ws = tmp_path / "ws"
    shutil.copytree(REPO, ws / "src" / "proassist_ros", ignore=_IGNORE)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV),
               PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    build = subprocess.run(
        [str(VENV / "bin" / "colcon"), "build", "--base-paths", "src",
         "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = ws / "install" / "proassist_ros"
    assert (install / "lib" / "proassist_ros" / "proassist_node").exists()
    assert (install / "share" / "proassist_ros" / "config" / "fastdds_profile.xml").exists()

    code = ("import proassist_ros.msg as m, proassist_ros.srv as s, proassist_ros.utils.netns as n;"
            "from proassist_ros.msg import Guidance; Guidance(text='x');"
            "from proassist_ros.model.embedded import WEIGHTS_DIR as w;"  # the shipped model's weights
            "print(m.__file__); print(s.__file__); print(n.__file__); print(w / 'adapter.safetensors');"
            "assert (w / 'tower.safetensors').is_file() and (w / 'adapter.safetensors').is_file()")
    run = subprocess.run(["sh", "-c", f'. "{ws}/install/setup.sh" && exec "{sys.executable}" -c "{code}"'],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    for line in run.stdout.split():
        # Everything, generated interfaces and Python sources, comes from the colcon install.
        assert Path(line).is_relative_to(install), line
