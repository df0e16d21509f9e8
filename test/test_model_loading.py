"""Checkpoints: own format round trip, LoRA merge, released-ProAssist layout, embedded cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from proassist_ros.model import LoraSettings, StreamState, add_lora, forward_chunk, load, merge_lora, save
from proassist_ros.model.embedded import CACHE_NAME, embedded_cache_path
from proassist_ros.model.testing import random_frames

REPO = Path(__file__).resolve().parents[1]


def logits_of(model, ids, frames=None):
    feats = None if frames is None else model.embed_frames(frames).reshape(-1, model.config.llm_hidden_size)
    return forward_chunk(model, StreamState.new(), ids, feats)


def sample_ids(model, n_frames=2):
    chat = model.chat
    return chat.bos_ids() + chat.message_ids("system", "Be helpful.") + chat.image_ids(n_frames) + chat.message_ids(
        "user", "Which screw?"
    )


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = load("tiny", chat_format="llama3", tokens_per_frame=10, seed=5)
    save(model, tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {
        "proassist_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"
    }
    again = load(tmp_path / "ckpt")
    assert again.config == model.config
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again.chat.img_token_id == model.chat.img_token_id
    assert sample_ids(again) == sample_ids(model)
    frames = random_frames(2)
    assert torch.equal(logits_of(again, sample_ids(again), frames), logits_of(model, sample_ids(model), frames))


def test_missing_checkpoint_files_are_named(tmp_path):
    save(load("tiny", tokens_per_frame=1), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(tmp_path)


def test_dtype_and_fp32_logits():
    model = load("tiny", chat_format="chatml", tokens_per_frame=1, dtype="bf16")
    assert model.dtype == torch.bfloat16 and next(model.vision.parameters()).dtype == torch.bfloat16
    assert model.mm_projector[0].weight.dtype == torch.bfloat16
    assert model.llm.model.rotary_emb.inv_freq.dtype == torch.float32  # RoPE stays exact
    logits = logits_of(model, sample_ids(model, 1), random_frames(1))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_lora_targets_and_merge_equals_adapter_forward():
    settings = LoraSettings(r=4, alpha=8.0, dropout=0.0)
    assert LoraSettings().target_regex() == "model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)|lm_head$"
    assert (LoraSettings().r, LoraSettings().alpha, LoraSettings().dropout, LoraSettings().scale) == (128, 256, 0.05, 2)
    model = load("tiny", chat_format="llama3", tokens_per_frame=5, seed=7)
    ids, frames = sample_ids(model), random_frames(2)
    base = logits_of(model, ids, frames)
    add_lora(model, settings, init_random=True)
    lora_names = [n for n, _ in model.llm.named_modules() if n.endswith("lora_A")]
    assert len(lora_names) == 2 * 7 + 1 and any("lm_head" in n for n in lora_names)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"llm", "mm_projector"}
    assert not any(p.requires_grad for p in model.vision.parameters())
    model.eval()
    unmerged = logits_of(model, ids, frames)
    assert not torch.allclose(unmerged, base, atol=1e-3)  # the adapter does something
    merge_lora(model)
    assert type(model.llm).__name__ == "LlamaForCausalLM"
    merged = logits_of(model, ids, frames)
    assert torch.allclose(merged, unmerged, atol=1e-4, rtol=0)


# ---- released ProAssist layout (spec §7.2), miniature ------------------------------------------


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """tiny Llama dir + tiny SigLIP dir + a released-style ProAssist dir (I=5, LoRA + projector)."""
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoTokenizer,
        LlamaForCausalLM,
        SiglipConfig,
        SiglipModel,
    )

    from proassist_ros.model.tiny import tiny_config
    from proassist_ros.model.tokenizer import LLAMA3_SPECIALS, smollm2_tokenizer_dir

    root = tmp_path_factory.mktemp("released")
    base_tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()))
    base_tok.add_special_tokens({"additional_special_tokens": list(LLAMA3_SPECIALS)})
    cfg = tiny_config("llama3", 5, vocab_size=len(base_tok), image_size=36)

    torch.manual_seed(11)
    from proassist_ros.model.assemble import llama_config

    llm = LlamaForCausalLM(llama_config(cfg.llm))
    llm_dir = root / "llama"
    llm.save_pretrained(str(llm_dir), safe_serialization=True)
    base_tok.save_pretrained(str(llm_dir))

    siglip = SiglipModel(
        SiglipConfig(
            vision_config=cfg.vision,
            text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "vocab_size": 100},
        )
    )
    vision_dir = root / "siglip"
    siglip.save_pretrained(str(vision_dir), safe_serialization=True)

    ckpt = root / "ProAssist-Model-L4096-I5"
    peft_model = get_peft_model(
        LlamaForCausalLM.from_pretrained(str(llm_dir)),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, init_lora_weights=False,
                   target_modules=r"model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)|lm_head$"),
    ).eval()
    peft_model.save_pretrained(str(ckpt))
    adapter = load_file(str(ckpt / "adapter_model.safetensors"))
    projector = {
        "base_model.model.mm_projector.0.weight": torch.randn(64, 32) * 0.1,
        "base_model.model.mm_projector.0.bias": torch.randn(64) * 0.1,
        "base_model.model.mm_projector.2.weight": torch.randn(64, 64) * 0.1,
        "base_model.model.mm_projector.2.bias": torch.randn(64) * 0.1,
    }
    save_file({**adapter, **projector}, str(ckpt / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        **cfg.llm,
        "architectures": ["ProActLlamaForCausalLM"],
        "llm_pretrained": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "vision_pretrained": "google/siglip-so400m-patch14-384",
        "vision_hidden_size": 32,
        "img_resolution": None,
        "use_img_cls_token": True,
        "img_patch_token_size": 2,
        "img_patch_token_layer": -2,
        "img_sep_token": "",
        "img_token": "<image>",
        "chat_formatter_cls": "LLaMA3MultimodalChat",
        "img_token_id": len(base_tok),
        "training_args": {"llm_train_mode": "lora", "lora_r": 4, "lora_alpha": 8},
    }
    (ckpt / "config.json").write_text(json.dumps(config))
    return {"ckpt": ckpt, "llm": llm_dir, "vision": vision_dir, "peft": peft_model, "siglip": siglip,
            "projector": projector, "adapter": adapter}


def test_released_layout_loads_and_equals_manual_merge(released, tmp_path):
    adapter = released["adapter"]
    key = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
    assert key in adapter and "base_model.model.lm_head.lora_B.weight" in adapter  # PEFT names (§7.2)

    model = load(released["ckpt"], llm_path=released["llm"], vision_path=released["vision"])
    assert (model.config.tokens_per_frame, model.config.chat_format, model.config.untrained) == (5, "llama3", False)
    assert model.chat.img_token_id == model.vocab_size

    base = load_file(str(released["llm"] / "model.safetensors"))
    for name in ("model.layers.1.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head"):
        a = adapter[f"base_model.model.{name}.lora_A.weight"]
        b = adapter[f"base_model.model.{name}.lora_B.weight"]
        w = base.get(f"{name}.weight", base.get("model.embed_tokens.weight") if name == "lm_head" else None)
        want = w + (8 / 4) * (b @ a)  # W + α/r · B·A
        got = dict(model.llm.named_modules())[name].weight
        assert torch.allclose(got, want, atol=1e-6), name
        assert not torch.allclose(got, w, atol=1e-4)
    assert model.llm.get_output_embeddings().weight is not model.llm.get_input_embeddings().weight
    assert torch.allclose(model.llm.get_input_embeddings().weight, base["model.embed_tokens.weight"])

    proj = released["projector"]
    assert torch.equal(model.mm_projector[0].weight, proj["base_model.model.mm_projector.0.weight"])
    assert torch.equal(model.mm_projector[2].bias, proj["base_model.model.mm_projector.2.bias"])
    sv, mv = released["siglip"].vision_model.state_dict(), model.vision.state_dict()
    assert sv.keys() == mv.keys() and all(torch.equal(v, mv[k]) for k, v in sv.items())

    # Merged model == PEFT's unmerged adapter forward.
    ids = model.chat.encode_text("hello there") + model.chat.bos_ids()
    with torch.no_grad():
        want = released["peft"](input_ids=torch.tensor([ids])).logits[0]
    assert torch.allclose(logits_of(model, ids), want, atol=1e-4)

    # The merged model saves to (and reloads from) the own format unchanged: identical tensors;
    # outputs equal up to float noise (kernels may differ with the tensors' memory layout).
    save(model, tmp_path / "merged")
    again = load(tmp_path / "merged")
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    frames = random_frames(1, 40, 40)
    got, want = logits_of(again, sample_ids(again, 1), frames), logits_of(model, sample_ids(model, 1), frames)
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


def test_released_errors_name_what_is_missing(released, tmp_path):
    ckpt = released["ckpt"]
    with pytest.raises(FileNotFoundError, match="llm_path="):
        load(ckpt, vision_path=released["vision"])
    with pytest.raises(FileNotFoundError, match="vision_path="):
        load(ckpt, llm_path=released["llm"])
    with pytest.raises(ValueError, match="I=5"):
        load(ckpt, llm_path=released["llm"], vision_path=released["vision"], tokens_per_frame=1)

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("config.json", "adapter_config.json"):
        (broken / f).write_text((ckpt / f).read_text())
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        load(broken, llm_path=released["llm"], vision_path=released["vision"])
    weights = {k: v for k, v in released["adapter"].items()}  # LoRA only, no projector
    save_file(weights, str(broken / "adapter_model.safetensors"))
    with pytest.raises(KeyError, match=r"mm_projector\.0\.weight"):
        load(broken, llm_path=released["llm"], vision_path=released["vision"])
    no_weights = tmp_path / "llm_without_weights"
    no_weights.mkdir()
    for f in released["llm"].iterdir():
        if f.suffix != ".safetensors":
            (no_weights / f.name).write_bytes(f.read_bytes())
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(ckpt, llm_path=no_weights, vision_path=released["vision"])


def test_unknown_spec_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither 'tiny', 'embedded'"):
        load("no/such/dir")
    with pytest.raises(FileNotFoundError, match="proassist_config.json"):
        load(tmp_path)


def test_embedded_prepare_is_idempotent_and_fast_when_cached(tmp_path):
    """With a cache present, --prepare returns at once without importing torch/transformers."""
    target = tmp_path / "embedded" / CACHE_NAME
    target.mkdir(parents=True)
    code = (
        "import sys;"
        "import proassist_ros.model.embedded as e; rc=e.main(['--prepare']);"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import';"
        "sys.exit(rc)"
    )
    env = {**os.environ, "PROASSIST_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert str(target) in out.stdout and "cache ready" in out.stderr


def test_embedded_loads_from_its_cache(tmp_path, monkeypatch, caplog):
    """load("embedded", weights="random") = cached LLM dir + seeded random SigLIP (224 px) +
    projector, untrained (the shipped weights: test_shipped_model.py).

    A tiny stand-in LLM in the cache keeps this fast; the real cache holds the converted
    SmolLM2-135M-Instruct (``python -m proassist_ros.model.embedded --prepare``).
    """
    from transformers import AutoTokenizer, LlamaForCausalLM

    from proassist_ros.model.assemble import llama_config
    from proassist_ros.model.tiny import tiny_config
    from proassist_ros.model.tokenizer import smollm2_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()))
    cache = tmp_path / "embedded" / CACHE_NAME
    llm = LlamaForCausalLM(llama_config(tiny_config("chatml", 1, vocab_size=len(tok)).llm))
    llm.save_pretrained(str(cache), safe_serialization=True)
    tok.save_pretrained(str(cache))
    monkeypatch.setenv("PROASSIST_CACHE_DIR", str(tmp_path))

    with caplog.at_level("WARNING"):
        model = load("embedded", tokens_per_frame=5, seed=3, weights="random")
    assert "UNTRAINED" in caplog.text
    cfg = model.config
    assert (cfg.chat_format, cfg.tokens_per_frame, cfg.untrained, cfg.image_size) == ("chatml", 5, True, 224)
    assert model.chat.img_token_id == model.vocab_size == len(tok) == 49152
    assert torch.equal(model.llm.lm_head.weight, llm.lm_head.weight)
    again = load("embedded", tokens_per_frame=5, seed=3, weights="random")  # seeded: same random vision tower
    assert torch.equal(again.vision.head.probe, model.vision.head.probe)
    feats = model.embed_frames(random_frames(1, 240, 320))
    assert feats.shape == (1, 5, 64)


def test_auto_dtype_runs_released_checkpoints_in_fp16_on_cuda(released):
    """dtype="auto": a released ProAssist checkpoint runs in float16 on CUDA, as the release was
    evaluated (spec P11); on the CPU everything stays fp32. The fp16 path itself is exercised on
    the CPU (same loader code as on a GPU): its logits stay close to fp32."""
    from proassist_ros.model.loader import auto_dtype, spec_kind

    ckpt = released["ckpt"]
    assert spec_kind(ckpt) == "released" and spec_kind("tiny") == "tiny"
    assert auto_dtype("released", "cuda") == torch.float16
    assert auto_dtype("released", "cuda:1") == torch.float16
    assert auto_dtype("checkpoint", "cuda") in (torch.bfloat16, torch.float16)
    assert auto_dtype("released", "cpu") is None and auto_dtype("embedded", "cpu") is None
    kw = dict(llm_path=released["llm"], vision_path=released["vision"])
    fp32 = load(ckpt, dtype="auto", device="cpu", **kw)
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
    fp16 = load(ckpt, dtype=torch.float16, **kw)
    assert {p.dtype for p in fp16.parameters()} == {torch.float16}
    frames = random_frames(1, 40, 40)
    got = logits_of(fp16, sample_ids(fp16, 1), frames)
    want = logits_of(fp32, sample_ids(fp32, 1), frames)
    assert got.dtype == torch.float32 and torch.allclose(got, want, atol=5e-2, rtol=0)


def test_embedded_cache_config_is_plain_fp32():
    """The converted SmolLM2 cache (made by setup) is a plain fp32 model: no GGUF
    ``quantization_config`` left in its config.json."""
    config = json.loads((embedded_cache_path() / "config.json").read_text())
    assert config["model_type"] == "llama" and config["dtype"] == "float32"
    assert "quantization_config" not in config
