"""``ros_e2e_p50_s`` / ``ros_e2e_p95_s`` of ``make bench``: frame stamp → Guidance in another process.

What ``make demo`` runs, measured from outside: ``proassist bringup`` (assistant + TTS, one
process each, sim time, the demo's parameters) and ``proassist replay`` of a sample bag at
``rate``, all in a private network namespace (utils/netns.py). This process (neither node) also
subscribes to the Guidance topic and to /clock; for each Guidance of the replay's session

    e2e = (sim time at receipt − the Guidance's header stamp) / rate

where the header stamp is the triggering frame's stamp (the assistant copies it) and the frame
was published when /clock reached that stamp. Sim time at receipt is the last /clock value plus
the wall time since it arrived × rate, so the figure is low by /clock's own delivery delay
(around a millisecond on loopback). A Guidance is published after its reply is generated, so
e2e includes the reply's decoding.

``measure`` (here, ROS-free) runs the measurement — ``proassist_ros/bench_e2e.py``, beside the demo
whose parameters and start-up it shares — as a child process with a wall-clock bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def measure(spec: str, bag: Path, out: Path, rate: float = 1.0, timeout_s: float = 600.0) -> dict:
    """Run the measurement in a child process; keys with None and a note when it cannot run."""
    from proassist_ros.utils import netns

    out.mkdir(parents=True, exist_ok=True)
    result = out / "ros_e2e.json"
    result.unlink(missing_ok=True)
    isolated = os.environ.get(netns.ISOLATED_ENV) == "1" and netns.only_loopback()
    if not isolated and not netns.can_isolate():
        return _null("no private network namespace here (`unshare -n` failed); DDS is not started "
                     "outside one")
    cmd = [sys.executable, "-m", "proassist_ros.bench_e2e", "--model", spec, "--bag", str(bag),
           "--rate", str(rate), "--out", str(out)]
    with open(out / "ros_e2e.log", "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  env=dict(os.environ, PYTHONUNBUFFERED="1"))
        except subprocess.TimeoutExpired:
            return _null(f"the bringup + replay run exceeded {timeout_s:.0f} s (log: {out / 'ros_e2e.log'})")
    if not result.is_file():
        return _null(f"the bringup + replay run failed (exit {proc.returncode}; log: {out / 'ros_e2e.log'})")
    return json.loads(result.read_text())


def head_bag(bag: Path, max_s: float, out: Path) -> Path:
    """A bag of ``bag``'s first ``max_s`` seconds (frames, user turns, references), written to
    ``out`` (replaced): the reduced run of ``make bench QUICK=1``."""
    import shutil

    from proassist_ros.data.dataset import write_episode
    from proassist_ros.data.dataset_read import read_episode
    from proassist_ros.eval.bench_quality import head

    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_episode(head(read_episode(bag), max_s), out)


def _null(why: str) -> dict:
    return {"ros_e2e_p50_s": None, "ros_e2e_p95_s": None, "ros_e2e": {"note": why}}
