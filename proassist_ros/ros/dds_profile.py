"""Point Fast DDS at the package's participant profile before rclpy creates a participant.

With Fast DDS defaults a best-effort subscriber loses most 640x480+ camera frames; the profile in
``config/fastdds_profile.xml`` (bigger SHM segment and socket buffers) fixes that (environment.md).
Fast DDS reads ``FASTDDS_DEFAULT_PROFILES_FILE`` when its participant factory starts, so this must
run before ``rclpy.init``/the first node. A value the user already set always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
PACKAGE = "proassist_ros"
PROFILE = Path("config") / "fastdds_profile.xml"


def find_profile() -> Path | None:
    """The profile file: source tree first (dev venv), then the ament share dir (installed)."""
    source = Path(__file__).resolve().parents[2] / PROFILE
    if source.is_file():
        return source
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / PROFILE)
    except (ImportError, LookupError, OSError):  # not installed / AMENT_PREFIX_PATH unset
        pass
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / PACKAGE / PROFILE)
    return next((c for c in candidates if c.is_file()), None)


def apply_default_profile() -> str | None:
    """Set ``FASTDDS_DEFAULT_PROFILES_FILE`` unless already set; return the path in force.

    Returns the user's value when set (even if it is not ours), our profile's path when it was
    applied, or None when the variable was unset and no profile file could be found.
    """
    current = os.environ.get(ENV)
    if current:
        return current
    profile = find_profile()
    if profile is None:
        return None
    os.environ[ENV] = str(profile)
    return str(profile)
