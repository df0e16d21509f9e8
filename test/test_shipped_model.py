"""The shipped embedded model (docs/model_card.md): small fp16 safetensors in the package, loaded
by ``load("embedded")`` as a trained model with its own θ and context limit, and on a shipped
test bag (not in its training data) it speaks close to reference instructions while staying
silent on most frames. Needs the real SmolLM2 cache (``make setup`` builds it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.engine import EngineConfig
from proassist_ros.engine.config import model_settings
from proassist_ros.eval.offline import run_episode
from proassist_ros.model import load
from proassist_ros.model.embedded import WEIGHTS_DIR
from proassist_ros.model.loader import default_settings

BAG = Path(__file__).resolve().parents[1] / "samples" / "test_0004_take_medicine"
WINDOW_S = 2.0


def _own_config() -> EngineConfig:
    """The shipped model's own settings, as the node and eval resolve them (reply ending included)."""
    return EngineConfig(**model_settings(-1.0, 0, default_settings("embedded"), "ips"))


@pytest.fixture(scope="module")
def shipped():
    return load("embedded")


def test_shipped_weights_are_small_fp16_safetensors():
    files = [f for f in WEIGHTS_DIR.iterdir() if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 50e6
    assert not [f.name for f in files if f.suffix in (".bin", ".pt", ".pth", ".pkl")]
    for name in ("tower.safetensors", "adapter.safetensors"):
        tensors = load_file(str(WEIGHTS_DIR / name))
        assert tensors and {v.dtype for v in tensors.values()} == {torch.float16}, name


def test_loads_as_trained_with_its_own_settings(shipped):
    cfg = shipped.config
    assert not cfg.untrained and cfg.tokens_per_frame == 1
    assert cfg.defaults["context_limit"] == 1024 and 0.0 < cfg.defaults["theta"] < 1.0
    assert default_settings("embedded") == cfg.defaults  # what the node reads before loading
    tower = load_file(str(WEIGHTS_DIR / "tower.safetensors"))
    state = shipped.vision.state_dict()
    assert all(torch.equal(state[k], v.float()) for k, v in tower.items())
    adapter = load_file(str(WEIGHTS_DIR / "adapter.safetensors"))
    proj = shipped.mm_projector.state_dict()
    assert all(torch.equal(proj[k.split(".", 1)[1]], v.float()) for k, v in adapter.items()
               if k.startswith("mm_projector."))
    base = load("embedded", weights="tower")  # the same LLM without the LoRA
    assert base.config.untrained
    name = "model.layers.0.self_attn.q_proj.weight"
    merged, plain = dict(shipped.llm.named_parameters())[name], dict(base.llm.named_parameters())[name]
    assert merged.shape == plain.shape and not torch.equal(merged, plain)


def test_other_shapes_are_refused_with_the_way_out():
    with pytest.raises(ValueError, match="weights='tower' or 'random'"):
        load("embedded", tokens_per_frame=5)
    with pytest.raises(ValueError, match="weights='random'"):
        load("embedded", image_size=224)


def test_speaks_near_instructions_and_is_silent_on_most_frames(shipped):
    episode, t0_ns = read_episode_base(BAG)
    run = run_episode(shipped, episode, _own_config(), t0_ns=t0_ns)
    instructions = [t for t, _, kind in run.references if kind == "instruction"]
    spoken = [t for t, _ in run.predictions]
    assert instructions and run.frames
    near = [s for s in spoken if any(abs(s - r) <= WINDOW_S for r in instructions)]
    assert near, f"no utterance within {WINDOW_S} s of an instruction: spoke at {spoken}, refs {instructions}"
    assert len(spoken) < 0.5 * len(run.frames), f"spoke on {len(spoken)} of {len(run.frames)} frames"
