"""Paper-size ProAssist on one CUDA GPU: how fast, and how many wearers per GPU.

SigLIP-SO400M-384 (27 layers, hidden 1152, patch 14) + a Llama-3.1-8B-shaped LLM (32 layers,
hidden 4096, GQA 32/8, MLP 14336), random weights in bf16, sdpa attention — the shapes of the
paper's model, not its weights (none are shipped or downloadable here). The LLM's vocabulary is
the package's built-in tokenizer's (49 152 rows instead of Llama-3's 128 256: the ``<image>`` id
must lie outside it), so its output head is 0.2 B instead of 0.5 B parameters; the JSON says so.

Measured (each frame: vision tower on one 384×384 frame, then the LLM on the frame's chunk at
~1000 tokens of cached context, the decision read at its last token):

- ``silent_fps``: frames per second for one stream at I = 1, 5 and 10 tokens per frame;
- ``first_token_ms``: a frame that speaks: its decision plus the first reply token;
- ``streams``: N streams decided together per round (``model.batched.forward_chunks_batched``,
  vision batched too), round latency p50/p95; a stream at 2 FPS needs a round every 0.5 s, so
  ``max_streams_2fps_p95_150ms`` is the largest N whose round p95 ≤ 150 ms.

``python bench/gpu_fullsize.py [--out bench/results/gpu_fullsize.json]``. Without CUDA it exits
with status 2 and says so. ``--smoke`` runs the same code with tiny shapes on CPU (the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

SO400M_384 = dict(image_size=384, patch_size=14, hidden_size=1152, intermediate_size=4304,
                  num_hidden_layers=27, num_attention_heads=16)
LLAMA31_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=131072)
SMOKE_VISION = dict(image_size=32, patch_size=4, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2)
SMOKE_LLM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, rope_theta=10000.0, max_position_embeddings=8192)


def build(tokens_per_frame: int, smoke: bool, device: torch.device, dtype: torch.dtype):
    """A ProAssistModel of the paper's shapes (or tiny ones), random weights materialised on device."""
    from transformers import LlamaConfig, SiglipVisionConfig

    from proassist_ros.model.assemble import build_model
    from proassist_ros.model.config import ProAssistConfig
    from proassist_ros.model.tokenizer import builtin_tokenizer

    tok = builtin_tokenizer("llama3")
    v, llm = (SMOKE_VISION, SMOKE_LLM) if smoke else (SO400M_384, LLAMA31_8B)
    cfg = ProAssistConfig(
        name=f"fullsize-shapes-I{tokens_per_frame}", chat_format="llama3", tokens_per_frame=tokens_per_frame,
        image_size=v["image_size"], vision_hidden_size=v["hidden_size"], llm_hidden_size=llm["hidden_size"],
        untrained=True, source="random weights (bench/gpu_fullsize.py)",
        vision=SiglipVisionConfig(**v).to_dict(),
        llm=LlamaConfig(vocab_size=len(tok) - 1, tie_word_embeddings=False, **llm).to_dict(),
    )
    model = build_model(cfg, tok, empty=True)  # parameters on the meta device: nothing allocated yet
    gen = torch.Generator(device=device).manual_seed(0)
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            t = torch.empty(p.shape, device=device, dtype=dtype)
            t.normal_(0.0, 0.02, generator=gen) if p.dim() > 1 else t.fill_(1.0 if "norm" in name else 0.0)
            module._parameters[name] = nn.Parameter(t, requires_grad=False)
    return model.to(device).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, reps: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def _context(model, n_tokens: int, device):
    """A stream whose cache holds ~``n_tokens`` (random text ids)."""
    from proassist_ros.model.streaming import StreamState, forward_chunk

    state = StreamState.new()
    ids = torch.randint(100, model.vocab_size - 1, (n_tokens,), generator=torch.Generator().manual_seed(1))
    forward_chunk(model, state, ids.tolist(), keep=[-1])
    return state


@torch.inference_mode()
def measure(model, device, context: int, reps: int, streams: list[int]) -> dict:
    from proassist_ros.model.batched import forward_chunks_batched
    from proassist_ros.model.streaming import forward_chunk

    size = model.config.image_size
    frames = [np.random.default_rng(k).integers(0, 256, (size, size, 3), dtype=np.uint8) for k in range(8)]
    chunk = model.chat.image_ids(1)  # I × <image> (+ the format's frame separators)
    base = _context(model, context, device)

    def silent():
        state = base.clone()
        feats = model.embed_frames(frames[:1])[0]
        forward_chunk(model, state, chunk, feats, keep=[-1])

    def first_token():
        state = base.clone()
        feats = model.embed_frames(frames[:1])[0]
        last = forward_chunk(model, state, chunk, feats, keep=[-1])[-1]
        forward_chunk(model, state, [int(last.argmax())], keep=[-1])

    # clone() copies the cache; time it alone and take it off
    clone_s = float(np.median(_timed(base.clone, device, reps)))
    silent_s = max(float(np.median(_timed(silent, device, reps))) - clone_s, 1e-9)
    first_s = max(float(np.median(_timed(first_token, device, reps))) - clone_s, 1e-9)
    out = {"silent_fps": 1.0 / silent_s, "silent_ms": 1e3 * silent_s, "first_token_ms": 1e3 * first_s,
           "chunk_tokens": len(chunk), "streams": {}}
    for n in streams:
        states = [base.clone() for _ in range(n)]

        def round_(states=states, n=n):  # each round appends one frame chunk to every stream
            feats = model.embed_frames([frames[k % len(frames)] for k in range(n)])
            forward_chunks_batched(model, states, [(chunk, feats[k]) for k in range(n)])

        times = _timed(round_, device, reps)
        out["streams"][n] = {"round_p50_ms": 1e3 * float(np.median(times)),
                             "round_p95_ms": 1e3 * float(np.percentile(times, 95)),
                             "frames_per_s": n / float(np.median(times))}
        del states
        if device.type == "cuda":
            torch.cuda.empty_cache()
    ok = [n for n, r in out["streams"].items() if r["round_p95_ms"] <= 150.0 and r["round_p50_ms"] <= 500.0]
    out["max_streams_2fps_p95_150ms"] = max(ok) if ok else 0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/gpu_fullsize.json"))
    p.add_argument("--context", type=int, default=1000, help="tokens of cached context per stream")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--streams", default="1,8,16,32,48,64", help="N streams batched per round")
    p.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (tests the script, measures nothing)")
    args = p.parse_args(argv)
    if args.smoke:
        device, dtype = torch.device("cpu"), torch.float32
    elif not torch.cuda.is_available():
        print("gpu_fullsize: CUDA is not available on this machine (torch.cuda.is_available() is False); "
              "this benchmark needs an NVIDIA GPU with ~40 GB free. Nothing was measured.", file=sys.stderr)
        return 2
    else:
        device, dtype = torch.device("cuda"), torch.bfloat16
    streams = [int(s) for s in args.streams.split(",") if s.strip()]
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)",
              "dtype": str(dtype).removeprefix("torch."), "attention": "sdpa", "torch": torch.__version__,
              "context_tokens": args.context, "smoke": args.smoke,
              "shapes": {"vision": SMOKE_VISION if args.smoke else SO400M_384,
                         "llm": SMOKE_LLM if args.smoke else LLAMA31_8B},
              "deviation": "vocabulary 49 152 (built-in tokenizer) instead of 128 256; random weights",
              "by_tokens_per_frame": {}}
    for i in (1, 5, 10):
        t0 = time.perf_counter()
        model = build(i, args.smoke, device, dtype)
        print(f"[gpu_fullsize] I={i}: model built in {time.perf_counter() - t0:.1f} s", flush=True)
        r = measure(model, device, args.context, args.reps, streams if i == 1 else streams[:1])
        result["by_tokens_per_frame"][i] = r
        print(f"[gpu_fullsize] I={i}: {r['silent_fps']:.1f} silent frames/s, first token {r['first_token_ms']:.1f} ms"
              + (f", {r['max_streams_2fps_p95_150ms']} streams at 2 FPS with round p95 ≤ 150 ms" if i == 1 else ""),
              flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"[gpu_fullsize] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
