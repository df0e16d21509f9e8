"""Package a trained tower + stage-2 adapter as the embedded model (``model/weights/embedded/``).

``load("embedded")`` reads that directory: ``tower.safetensors`` + ``vision_config.json`` (stage 1,
stored fp16) and ``adapter.safetensors`` + ``adapter_config.json`` (stage 2: LoRA + projector,
fp16), with θ (chosen on validation by ``proassist eval --select-theta``) added to the
adapter's settings, and the layout it was trained on (``train.layout.TRAINED_LAYOUT``:
``append_eot_after_reply``) where the adapter does not say it already. Nothing else is copied:
no optimizer state, no text tower, no caches.

    python -m proassist_ros.train.ship --tower runs/tower --adapter runs/s2/adapter --theta 0.4
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from proassist_ros.model.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_adapter_config
from proassist_ros.model.embedded import WEIGHTS_DIR
from proassist_ros.model.safetensors_io import load_safetensors
from proassist_ros.model.tower import CONFIG_FILE, TOWER_FILE, read_tower_config, tower_overrides
from proassist_ros.train.layout import TRAINED_LAYOUT

KEEP_TOWER_FIELDS = ("image_size", "patch_size", "hidden", "layers", "heads", "intermediate",
                     "siglip_vision_config", "train", "data", "val")
MAX_BYTES = 50_000_000


def ship(tower: str | Path, adapter: str | Path, theta: float, out: str | Path = WEIGHTS_DIR,
         note: dict | None = None) -> Path:
    """Write the embedded model's weight directory; returns it. Refuses mismatched parts."""
    tower, adapter, out = Path(tower), Path(adapter), Path(out)
    tcfg = read_tower_config(tower)
    tower_overrides(tower)  # the shape load("embedded") can build, or a ValueError naming why not
    info = read_adapter_config(adapter)
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must be in [0, 1], got {theta}")
    if info.get("tower") and Path(info["tower"]).resolve() != tower.resolve():
        raise ValueError(f"{adapter} was trained on the tower {info['tower']}, not {tower}")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()  # a conv stem's batch
             for k, v in load_safetensors(str(tower / TOWER_FILE)).items()}  # counters stay integers
    save_file(state, str(out / TOWER_FILE), metadata={"format": "pt"})
    (out / CONFIG_FILE).write_text(json.dumps({k: tcfg[k] for k in KEEP_TOWER_FIELDS if k in tcfg}, indent=1))
    shutil.copyfile(adapter / ADAPTER_WEIGHTS, out / ADAPTER_WEIGHTS)
    # An adapter from `proassist train` was trained on train/layout.py's sequences (older
    # exports did not record it yet).
    shipped = {**TRAINED_LAYOUT, **info, "theta": float(theta), "tower": "model/weights/embedded",
               **(note or {})}
    (out / ADAPTER_CONFIG).write_text(json.dumps(shipped, indent=1))
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    if size > MAX_BYTES:
        raise ValueError(f"{out}: {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB the repository allows")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m proassist_ros.train.ship", description=__doc__.split("\n")[0])
    p.add_argument("--tower", required=True, help="stage-1 output directory")
    p.add_argument("--adapter", required=True, help="stage-2 OUT/adapter directory")
    p.add_argument("--theta", type=float, required=True, help="θ chosen on validation")
    p.add_argument("--out", default=str(WEIGHTS_DIR), help="default: the package's model/weights/embedded")
    args = p.parse_args(argv)
    try:
        out = ship(args.tower, args.adapter, args.theta, args.out)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"ship: error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
