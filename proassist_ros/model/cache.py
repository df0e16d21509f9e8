"""Where derived artefacts (converted weights, extracted tokenizers) are cached on disk.

Converting the SmolLM2 GGUF (weights ~18 s, tokenizer ~8 s of metadata parsing) on every start
would dominate start-up and test time, so the results are written once under
``$PROASSIST_CACHE_DIR`` (default ``~/.cache/proassist_ros``). Writers build into a temporary
sibling directory and rename it into place, so concurrent processes never see half a cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "PROASSIST_CACHE_DIR"


def cache_dir() -> Path:
    """Root of the on-disk cache (created on demand)."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "proassist_ros")
    root.mkdir(parents=True, exist_ok=True)
    return root


def build_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Create directory ``target`` by running ``build(tmp_dir)`` and renaming ``tmp_dir`` to it.

    If another process finished the same target first, ours is discarded: the contents are
    deterministic, so either copy is fine.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
