"""``proassist bringup``: the assistant and the TTS node, each in its own process, as the launch file runs them.

``launch``/``launch_ros`` have no wheels (environment.md), so this is how the system starts where
there is no ROS install. Both ways read :mod:`proassist_ros.ros.nodeset`: the same nodes, names,
namespace, parameters file and remaps. Bringup is a small supervisor: it starts one process per
node, forwards SIGINT/SIGTERM to them, and ends the set when one node ends.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import subprocess
import sys
import time
from typing import Any

from proassist_ros.ros import nodeset


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Argument values keyed by nodeset names, and any trailing global ``--ros-args``."""
    parser = argparse.ArgumentParser(
        prog="proassist bringup",
        description="Run the assistant and the TTS node in one process (like "
                    "`ros2 launch proassist_ros proassist.launch.py`). Arguments after "
                    "--ros-args apply to both nodes.")
    for arg in nodeset.ARGUMENTS:
        parser.add_argument(f"--{arg.name.replace('_', '-')}", dest=arg.name,
                            default=arg.default, help=f"{arg.description} (default: "
                            f"{arg.default!r})")
    ros_args: list[str] = []
    if "--ros-args" in argv:
        cut = argv.index("--ros-args")
        argv, ros_args = argv[:cut], argv[cut:]
    return vars(parser.parse_args(argv)), ros_args


def node_command(spec: nodeset.NodeSpec, values: dict[str, str], ros_args: list[str]) -> list[str]:
    """The command line that runs ``spec``'s node in a process of its own, as the launch file does."""
    module = spec.factory.split(":")[0]
    args = nodeset.ros_arguments(spec, values)  # starts with --ros-args
    if not values.get("wearers", ""):  # several wearers: each node has its own namespace
        args += ["-r", f"__ns:=/{values['namespace'].strip('/')}"]
    return [sys.executable, "-m", module, *nodeset.node_arguments(spec, values), *args,
            *[a for a in ros_args if a != "--ros-args"]]


def bringup_main(argv: list[str]) -> int:
    """Run the node set until SIGINT/SIGTERM; 0 on a clean exit, 2 on bad arguments.

    One process per node, as ``ros2 launch`` runs them (docs/performance.md): in one process the
    TTS node's executor, its speech synthesis and the assistant's executor took the GIL and the
    cores from the model's worker thread. A node that exits ends the set with its exit code.
    """
    values, ros_args = parse_args(argv)
    try:
        nodeset.check_params_files(([ "--params-file", values["params_file"]] if values["params_file"]
                                    else []) + ros_args)
    except ValueError as exc:
        print(f"proassist bringup: {exc}", file=sys.stderr)
        return 2
    from proassist_ros.ros.dds_profile import apply_default_profile

    apply_default_profile()  # inherited by the nodes' processes; a user's own one wins
    specs = nodeset.nodes_for(values)
    procs = [subprocess.Popen(node_command(spec, values, ros_args), preexec_fn=_die_with_parent)
             for spec in specs]
    stopping: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = 0
        while all(p.poll() is None for p in procs) and not stopping:
            time.sleep(0.2)  # supervisor poll: a node's exit or a forwarded signal ends it
        ended = [p for p in procs if p.poll() is not None]
        if ended and not stopping:  # a node died on its own: stop the others, report its code
            code = ended[0].returncode
            print(f"proassist bringup: {specs[procs.index(ended[0])].name} exited with code {code}; "
                  "stopping the others", file=sys.stderr)
            forward(signal.SIGINT, None)
        for i, proc in enumerate(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"proassist bringup: {specs[i].name} did not stop in 30 s; killed", file=sys.stderr)
                proc.kill()
                proc.wait()
            code = code or (proc.returncode if proc.returncode > 0 else 0)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when bringup dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not glibc Linux: the nodes then outlive a killed bringup
        pass


def main() -> int:
    """Entry point for ``python -m proassist_ros.ros.bringup``."""
    return bringup_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
