"""``proassist eval`` command line (the work is in ``eval/evaluate.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from proassist_ros.constants import DEFAULT_QUANTIZE, QUANTIZE_CHOICES
from proassist_ros.engine.config import CONTEXT_STRATEGIES
from proassist_ros.model.lookup import DRAFT_MAX
from proassist_ros.utils.cliargs import deprecated_alias


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="proassist eval",
        description="Stream dataset bags through a model offline and score them with ProAssist's "
                    "metric (docs/eval.md). Several processes: torchrun --nproc_per_node N -m "
                    "proassist_ros.cli eval ...")
    p.add_argument("inputs", nargs="+", help="bags (directory or .mcap/.db3) or directories of bags")
    p.add_argument("--model", default="embedded", help="model spec: embedded, tiny or a checkpoint directory")
    # Option names follow the node's parameters (theta, context_strategy, context_limit); the
    # earlier spellings stay as hidden aliases (utils/cliargs.py).
    g = p.add_mutually_exclusive_group()
    theta = g.add_argument("--theta", type=float,
                           help="θ: silent iff P(silence) > θ (default: the model's own, else 0.3)")
    deprecated_alias(g, "--threshold", theta)
    g.add_argument("--sweep", help="θ sweep START:STOP:STEP, e.g. 0.1:0.9:0.1")
    strategy = p.add_argument("--context-strategy", default="ips", choices=CONTEXT_STRATEGIES,
                              help="what happens at the context limit")
    deprecated_alias(p, "--strategy", strategy)
    p.add_argument("--no-knowledge", action="store_true", help="do not give the recipe (task knowledge)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--fps", type=float, default=2.0, help="frames per second fed to the model (stamps)")
    p.add_argument("--window", default="default",
                   help="matching window by dataset name (spec §5.1 table: ego4d, wtag, ...; default ±2.5 s)")
    p.add_argument("--window-s", help="matching window in seconds LEFT,RIGHT (overrides --window), e.g. -2,4")
    p.add_argument("--context-limit", type=int, help="context limit L in tokens (default: the model's own, else 4096)")
    p.add_argument("--reply-max-tokens", type=int, default=100)
    p.add_argument("--reply-lookahead", type=int, default=DRAFT_MAX,
                   help="tokens guessed per reply forward by prompt lookup (0 = one token per forward); "
                        "speed only, greedy replies are the same")
    # Hidden: the reply ending is the model's own (how it was trained: engine.config.model_settings);
    # on/off force it, e.g. to measure the released inference's ending (spec P1) on a model trained here.
    p.add_argument("--append-eot", choices=("auto", "on", "off"), default="auto", help=argparse.SUPPRESS)
    p.add_argument("--compare-model", help="a second model spec, scored as a baseline at its best θ")
    p.add_argument("--rule-k", type=float, help="rule baseline period (s); default: best on these bags")
    select = p.add_argument("--select-theta", type=Path, metavar="PARAMS_YAML",
                            help="write the selected θ (best local maximum of F1, spec §5.3) into this "
                                 "node params file")
    deprecated_alias(p, "--select-threshold", select)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--quantize", choices=QUANTIZE_CHOICES, default=DEFAULT_QUANTIZE,
                   help="auto (default): int8 on CPU, as the node; int8: the decoder's Linear layers as "
                        "weight-only int8; none: fp32 (docs/performance.md)")
    p.add_argument("--asr", action="store_true",
                   help="user turns from speech: the bags' /proassist/audio (proassist synth --audio; "
                        "rendered with espeak-ng when absent) through VAD + ASR, placed at their recognised "
                        "start; reports WER and F1 with text turns beside F1 with spoken turns")
    p.add_argument("--no-report", action="store_true", help="metrics.json and output bags only")
    p.add_argument("--camera-topic", help="the bags' camera topic, Image or CompressedImage (default: "
                                          "/camera/image_raw or its /compressed, else a bag's only image topic)")
    return p


def write_params(path: Path, theta: float, rule_k: float | None, source: str) -> None:
    """A params file the node accepts (``--params-file``), keyed ``/**`` like config/proassist.yaml."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = f"  # rule baseline k on the same data: {rule_k:g} s" if rule_k is not None else ""
    path.write_text(f"# θ selected by `proassist eval --select-theta` on {source}{extra}\n"
                    f"/**:\n  ros__parameters:\n    theta: {float(theta)!r}\n")


def main(argv: list[str] | None = None) -> int:
    from proassist_ros.eval.evaluate import EvalSettings, evaluate, parse_sweep

    args = build_parser().parse_args(argv)
    try:
        from proassist_ros.model.loader import default_settings

        own = default_settings(args.model).get("theta", 0.3) if not args.sweep and args.theta is None else None
        thetas = parse_sweep(args.sweep) if args.sweep else [args.theta if args.theta is not None else own]
        if not all(0.0 <= t <= 1.0 for t in thetas):
            raise ValueError(f"θ must be in [0, 1], got {thetas}")
        window_s = None
        if args.window_s:
            left, right = (float(x) for x in args.window_s.split(","))
            window_s = (left, right)
        for path in args.inputs:
            if not Path(path).exists():
                raise FileNotFoundError(f"input not found: {path}")
        settings = EvalSettings(model=args.model, device=args.device, dtype=args.dtype, quantize=args.quantize,
                                thetas=thetas,
                                context_strategy=args.context_strategy, knowledge=not args.no_knowledge, fps=args.fps,
                                window=args.window, window_s=window_s, context_limit=args.context_limit,
                                reply_max_tokens=args.reply_max_tokens,
                                reply_lookahead=args.reply_lookahead, compare_model=args.compare_model,
                                rule_k=args.rule_k, camera_topic=args.camera_topic,
                                append_eot={"auto": None, "on": True, "off": False}[args.append_eot],
                                asr=args.asr)
        metrics = evaluate(args.inputs, settings, args.out, report=not args.no_report)
    except (FileNotFoundError, ValueError) as exc:
        print(f"proassist eval: error: {exc}", file=sys.stderr)
        return 2
    if metrics is None:  # not rank 0
        return 0
    _print_summary(metrics, args.out)
    if args.select_theta:
        if not metrics["best"]:
            print("proassist eval: error: no bag has reference turns; cannot select θ", file=sys.stderr)
            return 2
        rule = metrics["baselines"].get("rule", {})
        write_params(args.select_theta, metrics["theta_selected"], rule.get("k"), ", ".join(args.inputs))
        print(f"θ = {metrics['theta_selected']:g} written to {args.select_theta}")
    return 0


def _print_summary(m: dict, out: Path) -> None:
    n = len(m["videos"])
    print(f"{n} video(s), θ {', '.join(m['thetas'])}; outputs in {out}/")
    if m["metrics_skipped"]:
        print(f"metrics skipped (no /proassist/reference turns): {', '.join(m['metrics_skipped'])}")
    if m.get("no_task"):
        print(f"{m['no_task_note']}: {', '.join(m['no_task'])}")
    if m.get("not_scored_reason"):
        print(f"{m['not_scored_reason']}; the transcript is under videos[].said in metrics.json")
    if m.get("asr"):
        a = m["asr"]

        def f(x) -> str:
            return "—" if x is None else f"{x:.3f}"
        print(f"ASR ({'/'.join(a['audio'])} audio): WER {f(a['wer'])} ({a['word_errors']}/{a['words']} words), "
              f"real-time factor {f(a['real_time_factor'])}; F1 text turns {f(a['f1_text'])}, "
              f"spoken turns {f(a['f1_spoken'])} (θ {a['theta']:g})")
    if not m["best"]:
        return
    rows = [(f"model @ θ={m['theta_selected']:g}", m["best"])]
    for name, key in (("always silent", "silent"), ("rule", "rule"), ("compare model", "compare_model")):
        if key in m["baselines"]:
            b = m["baselines"][key]
            rows.append((name + (f" (k={b['k']:g}s)" if key == "rule" else ""), b))
    def num(x) -> str:
        return "     —" if x is None else f"{x:6.3f}"

    print(f"{'':28s} {'P':>6s} {'R':>6s} {'F1':>6s} {'F1 content-exact':>17s} {'right in content':>17s}")
    for name, r in rows:
        print(f"{name:28s} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} "
              f"{num(r.get('f1_content')):>17s} {num(r.get('content_right_share')):>17s}")
    if m["best"].get("content_note"):
        print(m["best"]["content_note"])
    ips = m.get("summaries") or {}
    if ips.get("events"):
        score = ips.get("score_nonempty")
        print(f"IPS: {ips['events']} summaries, {ips['nonempty_share']:.0%} non-empty"
              + (f", score vs the nearest progress_summary {score:.3f}" if score is not None else ""))
    print(json.dumps({"f1": m["best"]["f1"], "f1_content": m["best"].get("f1_content"),
                      "content_right_share": m["best"].get("content_right_share"), "theta": m["theta_selected"]}))


if __name__ == "__main__":
    sys.exit(main())
