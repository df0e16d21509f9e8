"""The native int8 product (``csrc/int8_gemv.c``) and the fused decode step built on it
(``csrc/decode_layer.c``, used by model/fused_decode.py): built once per machine, called through ctypes.

Why: ``quantize: int8`` stores the decoder's Linear weights as int8, so a reply token should
cost the time to stream ~106 MB of weights. torch's packed kernel (``_weight_int8pack_mm``)
converts every weight to bf16 and multiplies in fp32: ~7 GB/s of weights on one core here,
about a third of the memory bandwidth. The C kernel quantizes the activation row to int16 (one
scale per row, ~15 bits, finer than the packed kernel's bf16 activations) and uses integer pair
dot products, with the next weight rows prefetched (docs/performance.md "int8 kernel").

Build: the system C compiler (``$CC``, else ``cc`` / ``gcc``) with ``-O3 -march=native``, as the
machine that runs it has it, into the on-disk cache (``model/cache.py``) under a name that hashes
the source, the compiler and the CPU; ``make setup`` builds it, and a first call builds it
otherwise (~1 s). A self-check against torch runs once after loading. Where there is no compiler,
the build fails or the check fails, ``available()`` is False with the reason logged once, and
``Int8Linear`` keeps torch's packed kernel: the same weights, slower.
``PROASSIST_INT8_KERNEL=torch`` chooses torch's kernel on purpose (A/B runs, a suspected kernel bug).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
from pathlib import Path

import torch

from proassist_ros.model.cache import build_atomically, cache_dir

log = logging.getLogger(__name__)

KERNEL_ENV = "PROASSIST_INT8_KERNEL"  # "native" (default) | "torch"
CSRC = Path(__file__).with_name("csrc")
SOURCE = CSRC / "decode_layer.c"  # one translation unit: it includes int8_gemv.c
SOURCES = (SOURCE, CSRC / "int8_gemv.c", CSRC / "row_pool.c")
LIBRARY = "libproassist_int8.so"
_FLAG_SETS = (("-O3", "-march=native"), ("-O3",))  # the second for compilers without -march=native

_state: dict = {}  # "fn": the ctypes function or None, "why": the reason it is None
_threads = [1]    # threads of the native products (set_threads), applied when the library loads


def _compiler() -> list[str] | None:
    """The C compiler command: ``$CC`` (may carry words, e.g. "ccache gcc"), else cc or gcc."""
    if os.environ.get("CC", "").strip():
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


def _cpu_key() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))
    except OSError:
        return platform.platform()


def library_dir() -> Path:
    """The cache directory the kernel for this source, compiler and CPU is built into."""
    h = hashlib.sha256()
    parts = [src.read_bytes() for src in SOURCES]
    for part in (*parts, str(_compiler()).encode(), platform.machine().encode(), _cpu_key().encode()):
        h.update(part)
    return cache_dir() / "kernels" / f"int8_gemv-{h.hexdigest()[:16]}"


def _build(tmp: Path) -> None:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found ($CC, cc or gcc)")
    errors = []
    for flags in _FLAG_SETS:
        cmd = [*cc, *flags, "-shared", "-fPIC", str(SOURCE), "-o", str(tmp / LIBRARY), "-lm", "-pthread"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return
        errors.append(f"{' '.join(cmd)}: {r.stderr.strip()[-400:]}")
    raise RuntimeError("the C compiler failed: " + " | ".join(errors))


def _load() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr]:
    lib = ctypes.CDLL(str(build_atomically(library_dir(), _build) / LIBRARY))
    p, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    fn = lib.proassist_int8_linear
    fn.argtypes = [p, i64, i64, p, i64, p, p, p]  # x, M, K, w, N, scale, bias, y
    fn.restype = ctypes.c_int
    rows = lib.proassist_decode_rows  # model/fused_decode.py
    # x, M, weights, n_layers, kv, S, rows, D, H, Hkv, hd, I, eps, scaling, cos, sin
    rows.argtypes = [p, i64, p, i64, p, i64, p, i64, i64, i64, i64, i64, f32, f32, p, p]
    rows.restype = ctypes.c_int
    lib.proassist_set_threads.argtypes = [ctypes.c_int]
    lib.proassist_set_threads.restype = ctypes.c_int
    lib.proassist_set_threads(_threads[0])
    _state["set_threads"] = lib.proassist_set_threads
    return fn, rows


def _self_check(fn) -> None:
    """A product with a ragged shape (K not a multiple of 16, N not of 4, a bias) against torch."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 83, generator=g), torch.randint(-127, 128, (11, 83), generator=g, dtype=torch.int8)
    scale, bias = torch.rand(11, generator=g) / 100, torch.randn(11, generator=g)
    y = torch.empty(3, 11)
    if fn(x.data_ptr(), 3, 83, w.data_ptr(), 11, scale.data_ptr(), bias.data_ptr(), y.data_ptr()) != 0:
        raise RuntimeError("the kernel could not allocate its scratch buffer")
    ref = x @ (w.float() * scale[:, None]).T + bias
    if not torch.allclose(y, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max())):
        raise RuntimeError(f"self-check failed: max error {float((y - ref).abs().max()):.3g}")


def _resolve() -> None:
    choice = os.environ.get(KERNEL_ENV, "native").strip().lower() or "native"
    if choice not in ("native", "torch"):
        raise ValueError(f"{KERNEL_ENV}={choice!r}: expected 'native' or 'torch'")
    if choice == "torch":
        _state.update(fn=None, rows=None, why=f"{KERNEL_ENV}=torch")
        return
    try:
        fn, rows = _load()
        _self_check(fn)
        _state.update(fn=fn, rows=rows, why="")
    except Exception as exc:  # noqa: BLE001 -- any failure means: use torch's kernel, say why
        _state.update(fn=None, rows=None, why=str(exc))
        log.warning("int8: the native kernel is not used (%s); torch's packed kernel serves instead", exc)


def available() -> bool:
    """Whether the native kernel serves int8 products in this process (built and checked)."""
    if "fn" not in _state:
        _resolve()
    return _state["fn"] is not None


def why_unavailable() -> str:
    available()
    return _state["why"]


def use(choice: str) -> None:
    """Choose the kernel for this process ("native" or "torch"), as ``PROASSIST_INT8_KERNEL`` does
    at start-up: the benchmark's A/B of the two kernels in one run."""
    os.environ[KERNEL_ENV] = choice
    _state.clear()


def set_threads(n: int) -> int:
    """Threads of the native products, the caller included (csrc/row_pool.c; 1 = the calling
    thread alone, the default). Helpers only take blocks they can start, so a busy core never
    stalls a product, and results are bit-identical for any number. Returns the number set."""
    _threads[0] = max(1, min(int(n), 8))
    if _state.get("set_threads") is not None:
        _state["set_threads"](_threads[0])
    return _threads[0]


def threads() -> int:
    return _threads[0]


def decode_rows_fn() -> ctypes._CFuncPtr | None:
    """``proassist_decode_rows`` (csrc/decode_layer.c), built with the product; None where the
    native kernel is not available."""
    return _state["rows"] if available() else None


def linear(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x (M, K) fp32 @ (qweight (N, K) int8 * scale (N,))ᵀ + bias`` → (M, N) fp32. Called ~200
    times per token, so it stays lean (a call costs ~6 µs beside the product)."""
    fn = _state.get("fn")
    if fn is None:
        if not available():
            raise RuntimeError(f"int8 kernel unavailable: {why_unavailable()}")
        fn = _state["fn"]
    if not x.is_contiguous():
        x = x.contiguous()
    m, k = x.shape
    n = qweight.shape[0]
    y = torch.empty(m, n, dtype=torch.float32)
    if fn(x.data_ptr(), m, k, qweight.data_ptr(), n, scale.data_ptr(), None if bias is None else bias.data_ptr(),
          y.data_ptr()):
        raise MemoryError("int8 kernel: could not allocate its scratch buffer")
    return y


if __name__ == "__main__":  # `python -m proassist_ros.model.int8_kernel`: build now (make setup)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if available():
        print(f"int8 kernel and fused decode ready: {library_dir() / LIBRARY}")
    else:
        print(f"int8 kernel not built ({why_unavailable()}); int8 uses torch's packed kernel")
