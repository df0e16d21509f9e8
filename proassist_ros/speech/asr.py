"""Speech recognisers behind one small interface: audio of one utterance in, text out.

``pocketsphinx`` (default) is the one shipped: the 5.1.1 wheel carries its en-us acoustic model,
a general language model and the CMU dictionary, so nothing is downloaded. With a task set and
``bias`` on, it decodes with a small trigram model of the task's sentences (speech/bias.py),
built with pocketsphinx's own ARPA writer; the small discount mass (0.05) keeps it close to those
sentences, which is what brought the word error rate from 59-72 % to 7 % (docs/speech.md). With no
task, or ``bias`` off, it uses the general model.

``faster-whisper`` runs a CTranslate2 Whisper model from a local directory (``model_dir``); it
is optional and only checked here for a clear error when it or the directory is missing.
"""

from __future__ import annotations

import collections
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from proassist_ros.speech.audio import SAMPLE_RATE
from proassist_ros.speech.bias import task_sentences

BACKENDS = ("pocketsphinx", "faster-whisper")
DECODER_OPTIONS: dict = {}  # extra pocketsphinx options (measured variants: docs/speech.md)
DISCOUNT_MASS = 0.05   # measured: 0.5 -> 19.7 % WER, 0.1 -> 12.5 %, 0.03-0.05 -> 11.3-11.6 %
# Extra silence added around an utterance. The VAD already keeps 0.3 s before the onset and up
# to 0.3 s after the last voiced frame, which is what pocketsphinx needs not to drop edge words;
# more hurt: 0.3 s extra (the earlier setting) measured 10.7 % WER on the validation split's
# turns, 0.2 s 9.3 %, 0.1 s 7.1 %, 0.05 s 5.9 %, none 5.1 % (test split: 13.0 % -> 7.3 %).
PAD_S = 0.0
# Dither: stretches of digital silence (exact zeros, as espeak-ng writes and a muted or gated
# microphone gives) upset pocketsphinx's feature normalisation (2 turns that failed without it
# came back right). Added here, +-1 LSB from a fixed seed per utterance, not with pocketsphinx's
# own dither, whose one process-wide random stream made the result depend on what had been
# decoded before (the split's WER moved between 14.9 % and 16.1 % with the order).
DITHER_SEED = 0
# Sub-frame shifts: pocketsphinx's frames are 10 ms (160 samples) apart, and on synthetic speech
# a shift of a few milliseconds can turn a right sentence into a wrong one ("where is the
# flowering plant" -> "where is the where are the"). Decoding the utterance at three shifts and
# taking the text two of them agree on (else the best-scoring one) is a small ensemble, chosen on
# the validation split's turns (12.3 % -> 8.9 % WER as the VAD cuts them from a recording,
# 12.7 % -> 10.7 % rendered one by one; other shift sets, 4-8 shifts and a minimum-edit-distance
# choice measured no better): docs/speech.md. It costs three decodes per utterance.
SHIFTS = (0, 40, 100)  # samples of extra leading silence: 0, 2.5 and 6.25 ms


class RecognizerError(RuntimeError):
    """The recogniser cannot start (backend missing, model directory missing)."""


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float = -1.0   # 0..1, -1 unknown


class Recognizer(Protocol):
    """One utterance at a time; ``set_task`` may be called from another thread."""

    name: str

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """16 kHz mono int16 samples of one utterance -> its text ('' if nothing heard)."""
        ...

    def set_task(self, goal: str = "", knowledge: str = "", steps: Iterable[str] = ()) -> None:
        """Bias recognition toward this task (a no-op where the backend cannot)."""
        ...


class PocketsphinxRecognizer:
    """pocketsphinx with the shipped en-us model; a per-task LM when ``bias`` is on."""

    name = "pocketsphinx"

    def __init__(self, *, bias: bool = True, discount_mass: float = DISCOUNT_MASS,
                 shifts: tuple[int, ...] = SHIFTS) -> None:
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError as exc:
            raise RecognizerError(f"pocketsphinx is not installed ({exc}); "
                                  "run `make setup` (requirements.txt pins it)") from None
        model = Path(get_model_path("en-us"))
        self.bias = bias
        self._discount = discount_mass
        if not shifts or any(not 0 <= k < 160 for k in shifts):
            raise RecognizerError(f"shifts must be 1+ sample offsets in 0..159, got {shifts}")
        self.shifts = tuple(shifts)
        self._lock = threading.Lock()
        self._decoder = Decoder(hmm=str(model / "en-us"), lm=str(model / "en-us.lm.bin"),
                                dict=str(model / "cmudict-en-us.dict"), loglevel="FATAL",
                                samprate=SAMPLE_RATE, **DECODER_OPTIONS)
        self.search = "general"
        self.sentences: list[str] = []
        self.unknown_words: list[str] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="proassist_asr_")

    def set_task(self, goal: str = "", knowledge: str = "", steps: Iterable[str] = ()) -> None:
        if not self.bias:
            return
        sentences = task_sentences(goal, knowledge, steps)
        if not (goal.strip() or knowledge.strip() or list(steps)):
            with self._lock:
                self._decoder.activate_search("_default")
                self.search, self.sentences = "general", []
            return
        with self._lock:
            known, unknown = [], set()
            for s in sentences:
                missing = [w for w in s.split() if self._decoder.lookup_word(w) is None]
                unknown.update(missing)
                if not missing:
                    known.append(s)
            path = self._write_lm(known)
            self._decoder.add_lm_file("task", str(path))
            self._decoder.activate_search("task")
            self.search, self.sentences, self.unknown_words = "task", known, sorted(unknown)

    def _write_lm(self, sentences: list[str]) -> Path:
        from pocketsphinx.lm import ArpaBoLM

        lm = ArpaBoLM(text="\n".join(sentences), add_start=True, discount_mass=self._discount)
        lm.compute()
        path = Path(self._tmp.name) / "task.arpa"
        lm.write_file(str(path))
        return path

    def transcribe(self, samples: np.ndarray) -> Transcript:
        samples = samples.astype(np.int16, copy=False)
        with self._lock:
            results = [self._decode(np.concatenate([np.zeros(k, np.int16), samples]))
                       for k in self.shifts]
        votes = collections.Counter(text for text, _ in results)
        text, count = votes.most_common(1)[0]
        if count < 2:  # no two shifts agree: the best-scoring hypothesis
            text = max(results, key=lambda r: r[1])[0]
        # pocketsphinx's posterior is not computed in this search mode (it reads 0 = certain):
        # report "unknown" rather than a made-up 1.0.
        return Transcript(text, -1.0)

    def _decode(self, samples: np.ndarray) -> tuple[str, float]:
        """One pass: (text, pocketsphinx's best-path score, higher is better). Each pass starts
        from fresh feature state (cepstral mean), so a result never depends on what was decoded
        before."""
        pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.int16)
        x = np.concatenate([pad, samples, pad]).astype(np.int32)
        x += np.random.default_rng(DITHER_SEED).integers(-1, 2, x.size, dtype=np.int32)
        pcm = np.clip(x, -32768, 32767).astype(np.int16).tobytes()
        dec = self._decoder
        dec.reinit_feat()
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        hyp = dec.hyp()
        if hyp is None:
            return "", float("-inf")
        return hyp.hypstr.strip(), float(hyp.best_score)

    def close(self) -> None:
        self._tmp.cleanup()


class FasterWhisperRecognizer:
    """faster-whisper on a local CTranslate2 model directory; the task words go in the prompt."""

    name = "faster-whisper"

    def __init__(self, model_dir: str, *, bias: bool = True) -> None:
        if not model_dir:
            raise RecognizerError("asr_backend faster-whisper needs asr_model_dir "
                                  "(a local CTranslate2 Whisper model directory)")
        if not Path(model_dir).is_dir():
            raise RecognizerError(f"asr_model_dir {model_dir} is not a directory")
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise RecognizerError("asr_backend faster-whisper: the faster-whisper package is "
                                  "not installed (pip install faster-whisper)") from None
        try:
            self._model = WhisperModel(model_dir, device="cpu", compute_type="int8",
                                       local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a startup error
            raise RecognizerError(f"cannot load faster-whisper model from {model_dir}: "
                                  f"{exc}") from None
        self.bias = bias
        self._prompt: str | None = None

    def set_task(self, goal: str = "", knowledge: str = "", steps: Iterable[str] = ()) -> None:
        if self.bias:
            self._prompt = " ".join([goal, *steps])[:800] or None

    def transcribe(self, samples: np.ndarray) -> Transcript:
        audio = samples.astype(np.float32) / 32768.0
        segments, _ = self._model.transcribe(audio, language="en", initial_prompt=self._prompt)
        return Transcript(" ".join(s.text.strip() for s in segments).strip())

    def close(self) -> None:
        pass


def make_recognizer(backend: str = "pocketsphinx", model_dir: str = "", *,
                    bias: bool = True) -> PocketsphinxRecognizer | FasterWhisperRecognizer:
    """The recogniser for ``backend``; RecognizerError with a one-line reason if impossible."""
    if backend == "pocketsphinx":
        return PocketsphinxRecognizer(bias=bias)
    if backend == "faster-whisper":
        return FasterWhisperRecognizer(os.path.expanduser(model_dir), bias=bias)
    raise RecognizerError(f"unknown asr_backend {backend!r} (one of: {', '.join(BACKENDS)})")
