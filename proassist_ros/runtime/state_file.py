"""The session's state on disk, written atomically on every change (node parameter ``state_file``).

Why: a wearer's assistant must survive kill -9, an out-of-memory kill or a power cut without
losing the task, the progress summary, the step or the guidance ``seq`` (engine/resume.py). Each
write goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed over
the old one (``os.replace`` is atomic on POSIX), and the directory is fsync'ed: a crash at any
instant leaves either the old complete file or the new complete file, never a torn one.
A file that cannot be read back (damaged by hand, another program's) is moved aside as
``<name>.corrupt`` and named in the error, never silently overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StateFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise ValueError(f"state_file {self.path} is a directory; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"state_file {self.path}: cannot create its directory ({exc})") from None
        if not os.access(self.path.parent, os.W_OK):
            raise ValueError(f"state_file {self.path}: directory {self.path.parent} is not writable")
        self.writes = 0
        self._last: str | None = None

    def read(self) -> dict[str, Any] | None:
        """The saved state, None when there is none; ValueError (file moved aside) when damaged."""
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, found {type(data).__name__}")
            return data
        except (ValueError, UnicodeDecodeError) as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            raise ValueError(f"state_file {self.path} is damaged ({exc}); moved to {aside}, "
                             "starting a fresh session") from None

    def write(self, state: dict[str, Any]) -> bool:
        """Replace the file with ``state`` (atomic); False when nothing changed since the last write."""
        text = json.dumps(state, indent=1, sort_keys=True)
        if text == self._last:
            return False
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._last = text
        self.writes += 1
        return True
