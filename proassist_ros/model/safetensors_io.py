"""Reading weights: safetensors only, and a damaged file named in the error.

Why: weights are never unpickled (``torch.load`` runs code from the file), so every tensor file
this project reads goes through here; and safetensors' own errors ("incomplete metadata, file not
fully covered") do not say which of a checkpoint's files is damaged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file


def load_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``path``; FileNotFoundError or ValueError naming the file otherwise."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: only .safetensors weights are loaded (never pickled files)")
    if not path.is_file():
        raise FileNotFoundError(f"missing weights file: {path}")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
