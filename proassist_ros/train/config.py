"""``TrainConfig``: every knob of one stage-2 run, validated (the CLI and presets fill it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from proassist_ros.engine.config import DEFAULT_SYSTEM_PROMPT


@dataclass
class TrainConfig:
    """One run. ``model``: "embedded" | "tiny" | a checkpoint directory; ``base``: a checkpoint
    (ours, or a released ProAssist directory with ``llm_path``/``vision_path``) to continue from —
    a fresh LoRA is trained on top of its merged weights. ``tower``: a stage-1 output directory
    whose trained vision tower replaces the model's (``train/vision.py``)."""

    data: list[str]
    out: str
    val: list[str] = field(default_factory=list)
    model: str = "embedded"
    base: str | None = None
    llm_path: str | None = None
    vision_path: str | None = None
    tower: str | None = None
    tokens_per_frame: int | None = None       # None: the model's
    model_overrides: dict = field(default_factory=dict)   # e.g. tiny sizes (tests)
    steps: int = 600
    grad_accum: int = 1
    lr: float = 2e-4                           # LoRA
    projector_lr: float = 1e-3
    warmup: int = 30
    weight_decay: float = 0.0
    clip: float = 1.0
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    lora_lm_head: bool = True
    nfs_rho: float = 0.1
    knowledge_mix: bool = True
    # A summary turn (the engine's IPS request + the reference summary) at every progress_summary
    # reference, not only where a video outgrows L − reserve (docs/training.md, "Summary at every
    # reference"). On for new runs; a run started before it resumes with it off.
    summary_at_every_reference: bool = True
    context_limit: int = 1024
    reserve: int = 128
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    features: str | None = None                # feature cache dir (default: out/features)
    feature_cache: bool = True                 # False: compute features in memory
    seed: int = 0
    save_every: int = 50
    keep_checkpoints: int = 2
    eval_every: int = 0
    log_every: int = 1
    resume: bool = False
    stop_at: int = 0                           # stop (checkpointed, resumable) at this step; 0 = run to the end
    mixed_precision: str = "no"                # "bf16" on a GPU
    gradient_checkpointing: bool = False
    export: bool = True
    threads: int = 0                           # torch intra-op threads per process; 0 = leave

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"train config: {what}")

        need(bool(self.data), "no training data (--data)")
        need(self.steps >= 1, f"steps must be ≥ 1, got {self.steps}")
        need(self.grad_accum >= 1, f"grad_accum must be ≥ 1, got {self.grad_accum}")
        need(0 <= self.warmup <= self.steps, f"warmup {self.warmup} must be in [0, steps]")
        need(self.lr > 0 and self.projector_lr >= 0, "learning rates must be positive")
        need(self.lora_r >= 1 and self.lora_alpha > 0, "LoRA r must be ≥ 1 and alpha > 0")
        need(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(self.context_limit >= 64, f"context_limit must be ≥ 64, got {self.context_limit}")
        need(0 <= self.reserve < self.context_limit // 2, f"reserve {self.reserve} must be in "
             "[0, context_limit/2)")
        need(self.save_every >= 0 and self.eval_every >= 0 and self.log_every >= 1,
             "save_every/eval_every must be ≥ 0, log_every ≥ 1")
        need(self.mixed_precision in ("no", "bf16", "fp16"), "mixed_precision must be no|bf16|fp16")
        need(self.clip > 0, f"clip must be > 0, got {self.clip}")
