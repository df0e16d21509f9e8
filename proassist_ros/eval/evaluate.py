"""``proassist eval``: stream dataset bags through a model offline, score them with the paper's
metric, and write outputs (per-video output bags, metrics.json, the report).

Scaling: under ``torchrun`` / ``accelerate launch`` the bags are sharded over the processes
(rank r takes bags r, r + W, ...), every rank runs its share, and rank 0 gathers the runs, scores
and writes. Runs are deterministic per bag, so W processes give exactly the single-process result.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from proassist_ros.constants import DEFAULT_QUANTIZE
from proassist_ros.data.dataset import iter_dataset
from proassist_ros.data.dataset_read import read_episode_base
from proassist_ros.data.episode import spoken_references
from proassist_ros.engine import EngineConfig
from proassist_ros.eval import baselines
from proassist_ros.eval.content import WorldVocabulary, vocabulary_for
from proassist_ros.eval.metrics import (
    MatchResult,
    aggregate,
    select_theta,
    window_for,
)
from proassist_ros.eval.offline import VideoRun, run_episode
from proassist_ros.eval.scoring import NO_TASK_NOTE, NOT_SCORED_REASON, score_video
from proassist_ros.model.lookup import DRAFT_MAX

# Said in metrics.json, the report and the printed summary (a user's own recording has neither).


@dataclass
class EvalSettings:
    model: str = "embedded"
    device: str = "cpu"
    dtype: str = "auto"
    quantize: str = DEFAULT_QUANTIZE  # as the node (model/quantize.py)
    thetas: list[float] = field(default_factory=lambda: [0.3])
    context_strategy: str = "ips"
    knowledge: bool = True
    fps: float = 2.0
    window: str = "default"                 # a dataset name for the spec's window table
    window_s: tuple[float, float] | None = None   # overrides `window`
    context_limit: int | None = None        # None: the model's own (default_settings), else 4096
    reply_max_tokens: int = 100
    reply_lookahead: int = DRAFT_MAX        # prompt-lookup drafts per reply forward (speed only)
    compare_model: str | None = None        # a second model, scored at its own best θ
    rule_k: float | None = None             # None: the best k on these bags (say so in the report)
    vision_batch: int = 32
    camera_topic: str | None = None         # None: the default topics, else the bag's only image topic
    append_eot: bool | None = None          # None: as the model was trained (its own setting), else forced
    asr: bool = False                       # user turns as heard by VAD + ASR from the bag's audio
                                            # (or espeak-ng renderings): speech/dataset_audio.py

    def engine_config(self, theta: float, model_defaults: dict | None = None) -> EngineConfig:
        from proassist_ros.engine.config import model_settings

        kw: dict = dict(theta=theta, context_strategy=self.context_strategy,
                        reply_max_tokens=self.reply_max_tokens, reply_lookahead=self.reply_lookahead)
        # None: the model's own L (and reserve); the reserve and keep-last as the node derives
        # them; the reply ending as the model was trained unless forced
        kw.update(model_settings(None, self.context_limit or 0, model_defaults or {},
                                 strategy=self.context_strategy, append_eot=self.append_eot))
        return EngineConfig(**kw)

    @property
    def window_seconds(self) -> tuple[float, float]:
        return tuple(self.window_s) if self.window_s else window_for(self.window)


def parse_sweep(text: str) -> list[float]:
    """"0.1:0.9:0.1" → [0.1, 0.2, ..., 0.9] (inclusive, rounded to 6 digits)."""
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"--sweep wants START:STOP:STEP, e.g. 0.1:0.9:0.1; got {text!r}") from None
    if step <= 0 or hi < lo or not 0 <= lo <= 1 or not 0 <= hi <= 1:
        raise ValueError(f"--sweep {text!r}: need 0 <= START <= STOP <= 1 and STEP > 0")
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    return [round(lo + i * step, 6) for i in range(n)]


# ---- distributed ---------------------------------------------------------------------------
def _accelerator():
    """An Accelerator when launched with several processes (torchrun / accelerate), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def _close_group(acc) -> None:
    """All ranks leave the process group together once the last gather is done.

    Without this a rank that finished its share exited with gloo's group still alive while rank 0
    went on writing, and under load that rank's exit aborted ("terminate called without an active
    exception", torchrun exit -6): a shutdown race, not a result difference.
    """
    if acc is None:
        return
    import torch.distributed as dist

    acc.wait_for_everyone()
    if dist.is_initialized():
        dist.destroy_process_group()


def _gather(acc, items: list) -> list:
    if acc is None:
        return items
    from accelerate.utils import gather_object

    return gather_object(items)


# ---- running -------------------------------------------------------------------------------
def _load_model(spec: str, settings: EvalSettings):
    from proassist_ros.model import load

    return load(spec, device=settings.device, dtype=settings.dtype, quantize=settings.quantize)


def run_bags(bags: list[Path], settings: EvalSettings, model_spec: str, rank: int = 0, world: int = 1,
             show_progress: bool = True) -> list[dict]:
    """This rank's share of (bag, θ) runs, as dicts (picklable for gathering)."""
    from tqdm import tqdm

    mine = [(i, b) for i, b in enumerate(bags) if i % world == rank]
    if not mine:
        return []
    from proassist_ros.model.loader import default_settings

    model = _load_model(model_spec, settings)
    defaults = default_settings(model_spec)
    out = []
    bar = tqdm(total=len(mine) * len(settings.thetas), unit="run", disable=not show_progress,
               desc=f"eval {Path(model_spec).name}" + (f" [rank {rank}]" if world > 1 else ""))
    for i, bag in mine:
        episode, t0_ns = read_episode_base(bag, settings.camera_topic)
        heard = None
        if settings.asr:  # the recognised turns, at their recognised start times, replace the text
            from proassist_ros.speech.dataset_audio import spoken_turns

            heard = spoken_turns(episode, bag, t0_ns)
            episode = replace(episode, user_turns=heard.turns)
            heard = {k: v for k, v in asdict(heard).items() if k != "turns"}
        for theta in settings.thetas:
            run = run_episode(model, episode, settings.engine_config(theta, defaults), fps=settings.fps,
                              use_knowledge=settings.knowledge, t0_ns=t0_ns,
                              vision_batch=settings.vision_batch)
            out.append({"index": i, "bag": str(bag), "t0_ns": t0_ns, "theta": theta, "run": run.to_dict(),
                        **({"asr": heard} if heard is not None else {})})
            bar.update(1)
    bar.close()
    return out


Vocabularies = dict[str, tuple[WorldVocabulary | None, str]]


def score_runs(runs: list[VideoRun], settings: EvalSettings, vocabularies: Vocabularies | None = None,
               ) -> tuple[MatchResult | None, dict[str, MatchResult]]:
    """Overall and per-video MatchResults of the runs that have references.

    ``vocabularies``: video id → ``content.vocabulary_for`` of its bag (the content-exact F1);
    a video not in it has no content-exact numbers ("not available").
    """
    vocab = vocabularies or {}
    scores = {r.video_id: score_video(r.predictions, r.reference_turns, window_s=settings.window_seconds,
                                      fps=settings.fps, vocabulary=vocab.get(r.video_id, (None, ""))[0])
              for r in runs}
    per_video = {v: m for v, m in scores.items() if m is not None}
    overall = aggregate(list(per_video.values())) if per_video else None
    return overall, per_video


def _by_task_type(runs: list[VideoRun], per_video: dict[str, MatchResult]) -> dict[str, dict]:
    groups: dict[str, list[MatchResult]] = {}
    for r in runs:
        if r.video_id in per_video:
            groups.setdefault(r.task_type or "unknown", []).append(per_video[r.video_id])
    return {k: aggregate(v).to_dict() for k, v in sorted(groups.items())}


def _baselines(episodes: list, settings: EvalSettings) -> dict:
    """Silent and rule baselines on the episodes that have references."""
    scored = [e for e in episodes if spoken_references(e)]
    if not scored:
        return {}

    vocab = [vocabulary_for(e) for e in scored]

    def score(pred_fn) -> MatchResult:
        return aggregate([score_video(pred_fn(e), e.references, window_s=settings.window_seconds,
                                      fps=settings.fps, vocabulary=v)
                          for e, (v, _) in zip(scored, vocab, strict=True)])

    silent = score(baselines.silent_predictions)
    per_k = {k: score(lambda e, k=k: baselines.rule_predictions(e, k)) for k in baselines.RULE_KS}
    k = settings.rule_k if settings.rule_k is not None else baselines.best_rule_k(lambda k: per_k[k].f1)
    rule = per_k[k] if k in per_k else score(lambda e: baselines.rule_predictions(e, k))
    return {"silent": silent.to_dict(),
            "rule": {**rule.to_dict(), "k": k, "k_chosen_on": "given" if settings.rule_k is not None
                     else "these bags (pass --rule-k with the validation choice for a test report)",
                     "f1_per_k": {str(kk): r.f1 for kk, r in per_k.items()}}}


def _theta_summary(runs: list[VideoRun], settings: EvalSettings, vocabularies: Vocabularies | None = None,
                   ) -> dict:
    overall, per_video = score_runs(runs, settings, vocabularies)
    return {
        "overall": overall.to_dict() if overall else None,
        "per_task_type": _by_task_type(runs, per_video),
        "per_video": {v: m.to_dict(with_pairs=True) for v, m in per_video.items()},
        "utterances": sum(len(r.predictions) for r in runs),
        "frames": sum(len(r.frames) for r in runs),
        "context_events": sum(1 for r in runs for f in r.frames if f.context_event),
        "llm_s": sum(r.llm_s for r in runs), "vision_s": sum(r.vision_s for r in runs),
    }


def _preflight(bags: list[Path], camera_topic: str | None) -> None:
    """Fail before any model loads, naming the bag: unreadable storage, no camera topic, ..."""
    from rosbags.highlevel import AnyReaderError

    for bag in bags:
        try:
            read_episode_base(bag, camera_topic)
        except AnyReaderError as exc:
            raise ValueError(f"{bag}: cannot read this bag: {exc}") from exc


def evaluate(inputs: list[str | Path], settings: EvalSettings, out: Path, *,
             show_progress: bool = True, report: bool = True) -> dict | None:
    """Run, score and write. Returns metrics (rank 0) or None (other ranks)."""
    bags = list(iter_dataset(inputs))
    if not bags:
        raise FileNotFoundError(f"no bags found in {', '.join(map(str, inputs))}")
    _preflight(bags, settings.camera_topic)
    acc = _accelerator()
    rank, world = (acc.process_index, acc.num_processes) if acc else (0, 1)
    started = time.perf_counter()
    rows = _gather(acc, run_bags(bags, settings, settings.model, rank, world, show_progress))
    cmp_rows = (_gather(acc, run_bags(bags, settings, settings.compare_model, rank, world, show_progress))
                if settings.compare_model else [])
    text_rows = (_gather(acc, run_bags(bags, replace(settings, asr=False), settings.model, rank, world,
                                       show_progress)) if settings.asr else [])
    _close_group(acc)
    if rank != 0:
        return None
    rows.sort(key=lambda r: (r["index"], r["theta"]))
    _unique_ids(rows)
    cmp_rows.sort(key=lambda r: (r["index"], r["theta"]))
    _unique_ids(cmp_rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = _summarise(bags, rows, cmp_rows, settings, out)
    if settings.asr:
        metrics["asr"] = _asr_summary(rows, text_rows, settings, metrics)
    metrics["wall_s"] = time.perf_counter() - started
    metrics["processes"] = world
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if report:
        from proassist_ros.eval.report import write_report

        write_report(out, metrics, _runs_by_theta(rows))
    return metrics


def _asr_summary(rows: list[dict], text_rows: list[dict], settings: EvalSettings, metrics: dict) -> dict:
    """Word error rate of the spoken turns, and F1 with them beside F1 with the text turns (same θ,
    same scoring)."""
    theta = metrics["theta_selected"]
    heard = [r["asr"] for r in rows if r["theta"] == theta]
    errors, words = sum(h["errors"] for h in heard), sum(h["words"] for h in heard)
    audio_s, cpu_s = sum(h["audio_s"] for h in heard), sum(h["cpu_s"] for h in heard)
    text_runs = [VideoRun.from_dict(r["run"]) for r in sorted(text_rows, key=lambda r: r["index"])
                 if r["theta"] == theta]
    text_overall, _ = score_runs(text_runs, settings)
    spoken = metrics["best"]
    return {"wer": errors / words if words else None, "word_errors": errors, "words": words,
            "audio": sorted({h["audio"] for h in heard}), "audio_s": round(audio_s, 1),
            "real_time_factor": cpu_s / audio_s if audio_s else None, "theta": theta,
            "f1_spoken": spoken["f1"] if spoken else None,
            "f1_text": text_overall.f1 if text_overall else None}


def _unique_ids(rows: list[dict]) -> None:
    """Two bags with the same video_id (copies, users' recordings) stay apart: "id#2", "id#3"."""
    seen: dict[str, int] = {}
    names: dict[int, str] = {}
    for r in rows:
        if r["index"] not in names:
            vid = r["run"]["video_id"]
            seen[vid] = seen.get(vid, 0) + 1
            names[r["index"]] = vid if seen[vid] == 1 else f"{vid}#{seen[vid]}"
        r["run"]["video_id"] = names[r["index"]]


def _runs_by_theta(rows: list[dict]) -> dict[float, list[VideoRun]]:
    by: dict[float, list[VideoRun]] = {}
    for r in rows:
        by.setdefault(r["theta"], []).append(VideoRun.from_dict(r["run"]))
    return by


def _summarise(bags: list[Path], rows: list[dict], cmp_rows: list[dict], settings: EvalSettings,
               out: Path) -> dict:
    from proassist_ros.eval.outputs import write_run_bag
    from proassist_ros.eval.summaries import summary_stats

    by_theta = _runs_by_theta(rows)
    thetas = sorted(by_theta)
    first = by_theta[thetas[0]]
    episodes = [read_episode_base(b, settings.camera_topic)[0] for b in bags]
    # the world's facts for the content-exact F1 (video ids as the runs name them, "id#2" too)
    vocabularies = {run.video_id: vocabulary_for(ep) for run, ep in zip(first, episodes, strict=True)}
    per_theta = {f"{t:g}": _theta_summary(by_theta[t], settings, vocabularies) for t in thetas}
    scored = any(r.has_references for r in first)
    f1s = [per_theta[f"{t:g}"]["overall"]["f1"] if scored else 0.0 for t in thetas]
    best = select_theta(thetas, f1s) if scored and len(thetas) > 1 else thetas[0]
    for r in rows:  # output bags for the chosen θ, on the input's time base
        if r["theta"] == best:
            run = VideoRun.from_dict(r["run"])
            write_run_bag(run, out / "outputs" / run.video_id, r["t0_ns"])
    videos = _videos(first, episodes, by_theta[best])
    for v in videos:  # why a video has no content-exact numbers
        if vocabularies[v["video_id"]][0] is None:
            v["content_note"] = vocabularies[v["video_id"]][1]
    from proassist_ros.model.loader import default_settings

    engine = settings.engine_config(thetas[0], default_settings(settings.model))
    metrics = {
        "settings": {**asdict(settings), "window_seconds": list(settings.window_seconds),
                     "append_eot_after_reply": engine.append_eot_after_reply},
        "bags": [str(b) for b in bags],
        "videos": videos,
        "scored": scored,
        **({} if scored else {"not_scored_reason": NOT_SCORED_REASON}),
        "metrics_skipped": [r.video_id for r in first if not r.has_references],
        "no_task": [v["video_id"] for v in videos if not v["task"]],
        "no_task_note": NO_TASK_NOTE,
        "thetas": per_theta,
        "theta_selected": best,
        "best": per_theta[f"{best:g}"]["overall"],
        "baselines": _baselines(episodes, settings),
        # IPS events at the selected θ: non-empty share, score against the nearest progress_summary
        "summaries": summary_stats(by_theta[best]),
    }
    if cmp_rows:
        cmp_by = _runs_by_theta(cmp_rows)
        cmp = {f"{t:g}": _theta_summary(cmp_by[t], settings, vocabularies)["overall"] for t in sorted(cmp_by)}
        if scored:
            ct = sorted(cmp_by)
            cbest = select_theta(ct, [cmp[f"{t:g}"]["f1"] for t in ct]) if len(ct) > 1 else ct[0]
            metrics["baselines"]["compare_model"] = {"model": settings.compare_model, "theta": cbest,
                                                     **cmp[f"{cbest:g}"]}
    return metrics


def _videos(first: list[VideoRun], episodes: list, at_best: list[VideoRun]) -> list[dict]:
    """Per video: what it holds and what could not be done with it. A video without references
    gets its transcript at the selected θ instead of scores (what the model said, when, how fast)."""
    out = []
    for run, episode, best in zip(first, episodes, at_best, strict=True):
        v = {"video_id": run.video_id, "task_type": run.task_type, "split": run.split,
             "duration_s": run.duration_s, "references": len(run.references),
             "scored": run.has_references, "task": episode.task is not None}
        notes = [] if run.has_references else [NOT_SCORED_REASON]
        notes += [] if v["task"] else [NO_TASK_NOTE]
        if notes:
            v["notes"] = notes
        if not run.has_references:
            v["not_scored_reason"] = NOT_SCORED_REASON
            v["said"] = [{"t": f.t, "text": f.text, "p_speak": f.p_speak, "llm_s": f.latency_s}
                         for f in best.frames if f.spoke]
        out.append(v)
    return out
