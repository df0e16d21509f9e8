"""``python -m proassist_ros.speech.measure DIR [--bags N]``: the ASR's word error rate on a split.

Renders every user turn of the bags with espeak-ng (as ``proassist synth --audio`` does), runs
VAD + recognition on each with the bag's task bias on and off, and prints WER for both and the
real-time factor (CPU seconds per audio second, one process = one core). The figures in
docs/speech.md come from this.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from proassist_ros.speech.asr import PocketsphinxRecognizer
from proassist_ros.speech.audio import render_speech
from proassist_ros.speech.transcribe import transcribe
from proassist_ros.speech.wer import word_errors

TURN_PAD_S = 0.5  # silence around each rendered turn, as between turns in a bag's audio


def measure(bag_dir: str | Path, bags: int = 0, verbose: bool = False) -> dict:
    from proassist_ros.data.dataset import iter_dataset
    from proassist_ros.data.dataset_read import read_episode

    paths = list(iter_dataset(bag_dir))[: bags or None]
    on, off = PocketsphinxRecognizer(bias=True), PocketsphinxRecognizer(bias=False)
    totals = {"on": [0, 0], "off": [0, 0]}
    audio_s = cpu_on = 0.0
    turns = 0
    with tempfile.TemporaryDirectory(prefix="proassist_wer_") as tmp:
        for bag in paths:
            ep = read_episode(bag)
            task = ep.task
            on.set_task(task.goal, task.knowledge, task.steps) if task else on.set_task()
            for i, turn in enumerate(ep.user_turns):
                audio = render_speech(turn.text, Path(tmp) / f"t{i}.wav", pad_s=TURN_PAD_S)
                for key, rec in (("on", on), ("off", off)):
                    t0 = time.process_time()
                    res = transcribe(audio.samples, rec)
                    if key == "on":
                        cpu_on += time.process_time() - t0
                    hyp = " ".join(u.text for u in res.utterances)
                    e, n = word_errors(turn.text, hyp)
                    totals[key][0] += e
                    totals[key][1] += n
                    if verbose and e and key == "on":
                        print(f"{bag.name}: {turn.text!r} -> {hyp!r}", file=sys.stderr)
                audio_s += audio.duration_s
                turns += 1
    return {"bags": len(paths), "turns": turns, "words": totals["on"][1],
            "wer_bias_on": totals["on"][0] / max(1, totals["on"][1]),
            "wer_bias_off": totals["off"][0] / max(1, totals["off"][1]),
            "real_time_factor_bias_on": cpu_on / audio_s if audio_s else 0.0,
            "audio_s": round(audio_s, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m proassist_ros.speech.measure")
    ap.add_argument("bags", help="a directory of dataset bags (e.g. data/test)")
    ap.add_argument("--bags", dest="n", type=int, default=0, help="only the first N bags")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every wrong turn")
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.bags, args.n, args.verbose), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
