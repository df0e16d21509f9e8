"""``proassist asr FILE.wav``: what the ASR hears in a recording, one line per utterance.

For checking recognition on one's own recordings (a headset on the rig, a noisy kitchen): the
same VAD and recogniser as the ASR node, with the same task bias when ``--task`` names a dataset
bag (its Task) or ``--goal``/``--recipe`` give one. Any PCM WAV works: other rates are
resampled to 16 kHz, stereo is downmixed; anything else is refused in one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys

from proassist_ros.speech.asr import BACKENDS, RecognizerError, make_recognizer
from proassist_ros.speech.audio import AudioError, read_wav
from proassist_ros.speech.transcribe import transcribe


def _task(args: argparse.Namespace) -> tuple[str, str, list[str]]:
    if args.task:
        from proassist_ros.data.dataset_read import read_episode

        ep = read_episode(args.task)
        if ep.task is None:
            raise ValueError(f"{args.task} holds no task (/proassist/task)")
        return ep.task.goal, ep.task.knowledge, list(ep.task.steps)
    recipe = ""
    if args.recipe:
        try:
            with open(args.recipe, encoding="utf-8") as f:
                recipe = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read recipe {args.recipe}: {exc}") from None
    return args.goal, recipe, []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="proassist asr", description=__doc__.split("\n\n")[0])
    ap.add_argument("wav", help="a PCM WAV file (any rate, mono or stereo)")
    ap.add_argument("--backend", choices=BACKENDS, default="pocketsphinx")
    ap.add_argument("--model-dir", default="", help="faster-whisper: local model directory")
    ap.add_argument("--task", default="", help="bias toward the task of this dataset bag")
    ap.add_argument("--goal", default="", help="bias: the wearer's goal ('I want to ...')")
    ap.add_argument("--recipe", default="", help="bias: a recipe text file (numbered steps)")
    ap.add_argument("--no-bias", action="store_true", help="the general language model only")
    args = ap.parse_args(argv)
    try:
        audio = read_wav(args.wav)
        rec = make_recognizer(args.backend, args.model_dir, bias=not args.no_bias)
        goal, recipe, steps = _task(args)
        if goal or recipe or steps:
            rec.set_task(goal, recipe, steps)
        result = transcribe(audio.samples, rec)
    except (AudioError, RecognizerError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"proassist asr: error: {exc}", file=sys.stderr)
        return 2
    for u in result.utterances:
        print(f"{u.start_s:7.2f} {u.end_s:7.2f}  {u.text}")
    note = (f" (resampled from {audio.source_rate} Hz)" if audio.source_rate != audio.rate
            else "") + (" (downmixed from stereo)" if audio.source_channels > 1 else "")
    print(f"# {len(result.utterances)} utterance(s) in {audio.duration_s:.1f} s{note}; "
          f"{rec.name}, real-time factor {result.real_time_factor:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
