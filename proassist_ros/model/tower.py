"""A finished stage-1 tower on disk, and putting it into a ProAssist model.

``tower.safetensors`` holds the ``SiglipVisionModel`` state dict under the key names of
``ProAssistModel.vision``; ``vision_config.json`` its architecture (and how it was trained). The
stage-2 trainer builds its model to fit (``tower_overrides``) and copies the tower in
(``load_tower_into``), which refuses a tower of another shape and names every differing field.
"""

from __future__ import annotations

import json
from pathlib import Path

from proassist_ros.model.safetensors_io import load_safetensors
from proassist_ros.model.vision import config_stem

TOWER_FILE, CONFIG_FILE = "tower.safetensors", "vision_config.json"
VISION_FIELDS = ("image_size", "patch_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_channels", "hidden_act", "layer_norm_eps", "vision_use_head",
                 "patch_stem")  # patch_stem: only a conv-stem tower says it (absent = "patch")


def read_tower_config(tower_dir: str | Path) -> dict:
    d = Path(tower_dir)
    for name in (TOWER_FILE, CONFIG_FILE):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d}: missing {name} (not a finished stage-1 output)")
    return json.loads((d / CONFIG_FILE).read_text())


def tower_overrides(tower_dir: str | Path) -> dict[str, int]:
    """``load("embedded", **tower_overrides(dir))`` builds a model whose tower fits ``dir``."""
    cfg = read_tower_config(tower_dir)
    if cfg["heads"] != max(1, cfg["hidden"] // 64) or cfg["intermediate"] != 4 * cfg["hidden"]:
        raise ValueError(f"{tower_dir}: heads {cfg['heads']} / intermediate {cfg['intermediate']} differ from "
                         "what load('embedded') builds (hidden // 64, 4 · hidden)")
    return {"image_size": cfg["image_size"], "patch_size": cfg["patch_size"], "vision_hidden": cfg["hidden"],
            "vision_layers": cfg["layers"], "patch_stem": config_stem(cfg["siglip_vision_config"])}


def load_tower_into(model, tower_dir: str | Path) -> None:
    """Copy a trained tower into ``model.vision`` (in the model's dtype and device), after checking
    that the architectures agree; the error names every differing field."""
    cfg = read_tower_config(tower_dir)
    want, have = cfg["siglip_vision_config"], model.vision.config.to_dict()
    bad = [f"{k}: tower {want.get(k)!r} vs model {have.get(k)!r}" for k in VISION_FIELDS if want.get(k) != have.get(k)]
    if model.config.image_size != cfg["image_size"]:
        bad.append(f"image_size: tower {cfg['image_size']} vs model config {model.config.image_size}")
    if bad:
        raise ValueError(f"{tower_dir}: the trained tower does not fit the model: " + "; ".join(bad))
    state = load_safetensors(str(Path(tower_dir) / TOWER_FILE))
    ref = model.vision.state_dict()
    if set(state) != set(ref):
        raise KeyError(f"{tower_dir}: tower keys differ: missing {sorted(set(ref) - set(state))[:5]}, "
                       f"unexpected {sorted(set(state) - set(ref))[:5]}")
    model.vision.load_state_dict({k: v.to(ref[k].device, ref[k].dtype) for k, v in state.items()}, strict=True)
