"""What a model spec names — "tiny", "embedded", an own checkpoint or a released ProAssist
directory — decided from the file system alone (no torch import), so commands can refuse a bad
``--model`` before starting anything that takes minutes."""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "proassist_config.json"  # an own checkpoint's config (model/config.py)


def spec_kind(spec: str | Path) -> str:
    """"tiny" | "embedded" | "checkpoint" | "released" | "missing" for a model spec."""
    spec_s = str(spec)
    if spec_s in ("tiny", "embedded"):
        return spec_s
    path = Path(spec_s).expanduser()
    if not path.is_dir():
        return "missing"
    if (path / CONFIG_NAME).is_file():
        return "checkpoint"
    if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
        return "released"
    return "missing"


def check_spec(spec: str | Path) -> str:
    """``spec_kind`` of a spec that names a loadable model; FileNotFoundError says why not.

    Cheap (no weights read): commands call it before starting anything that takes minutes."""
    kind = spec_kind(spec)
    if kind != "missing":
        return kind
    path = Path(str(spec)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model spec {str(spec)!r} is neither 'tiny', 'embedded' nor an existing directory")
    raise FileNotFoundError(f"{path}: missing {CONFIG_NAME} (own checkpoint) and adapter_config.json / "
                            "config.json (released ProAssist directory)")
