"""CPU threading of the inference process: OpenMP wait policy and torch's intra-op threads.

Why this module exists (measured on the 2-core machine, docs/performance.md): a live node shares
its cores with the rclpy executor, the DDS threads, the TTS node and often the camera driver. With
torch's default (one OpenMP thread per core, threads that spin at every barrier), one reply token
of the embedded model took 410 ms while another process kept one core busy, against 74 ms with
one intra-op thread: every OpenMP barrier waits for a thread the scheduler has parked. So:

- ``OMP_WAIT_POLICY=PASSIVE`` is set at process start-up, before torch (libgomp reads it once,
  when it loads): idle OpenMP threads sleep instead of spinning on the core others need.
- ``torch_threads`` (a node parameter) sets the intra-op threads; 0 = auto = the usable cores
  minus one, kept for the ROS side of the process (at least 1).
- The same parameter sets the threads of the native int8 products (model/csrc/row_pool.c), auto
  the same number (at most 4: more only wait for memory). Those helpers only take work they can
  start at once, so a core the scheduler gives to DDS or TTS never stalls a product. On an idle
  2-core machine two threads decode a reply token ~1.4× faster, but in the live node on 2 cores
  (node, model process, TTS, DDS) they did not help (docs/performance.md "Helper threads for the
  int8 products"), so auto leaves the ROS core alone here too.

A user's own ``OMP_WAIT_POLICY`` in the environment always wins.
"""

from __future__ import annotations

import os
import sys

OMP_WAIT_POLICY = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"


def prepare_process() -> str:
    """Set the OpenMP wait policy before torch loads; returns a line for the node's log."""
    if OMP_WAIT_POLICY in os.environ:
        return f"{OMP_WAIT_POLICY}={os.environ[OMP_WAIT_POLICY]} (from the environment)"
    if "torch" in sys.modules:  # libgomp already read its environment: too late to apply
        return f"{OMP_WAIT_POLICY} not set (torch was imported before the node started)"
    os.environ[OMP_WAIT_POLICY] = DEFAULT_WAIT_POLICY
    return f"{OMP_WAIT_POLICY}={DEFAULT_WAIT_POLICY} (idle OpenMP threads sleep)"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or taskset's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_threads(requested: int, cores: int | None = None) -> int:
    """Intra-op threads for ``torch_threads``: ``requested`` if > 0, else ``cores − 1`` (≥ 1)."""
    if requested > 0:
        return requested
    return max(1, (cores if cores is not None else usable_cores()) - 1)


NATIVE_MAX_AUTO = 4  # more helper threads than this only wait for memory on a CPU decoder


def resolve_native_threads(requested: int, cores: int | None = None) -> int:
    """Threads of the native int8 products: ``requested`` if > 0, else as torch's auto (≤ 4)."""
    if requested > 0:
        return requested
    return min(NATIVE_MAX_AUTO, resolve_threads(0, cores))


def apply_torch_threads(requested: int) -> int:
    """Set torch's intra-op threads and the native products' threads from the ``torch_threads``
    parameter; returns torch's number."""
    import torch

    from proassist_ros.model import int8_kernel

    n = resolve_threads(requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    int8_kernel.set_threads(resolve_native_threads(requested))
    return n
