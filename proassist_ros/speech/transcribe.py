"""A whole recording to timed utterances: VAD, then the recogniser on each utterance.

Shared by ``proassist asr FILE.wav`` and ``proassist eval --asr`` so both measure what the ASR
node does live (the node runs the same VoiceDetector and Recognizer on streamed chunks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from proassist_ros.speech.asr import Recognizer
from proassist_ros.speech.audio import SAMPLE_RATE
from proassist_ros.speech.vad import VadConfig, segment


@dataclass(frozen=True)
class TimedText:
    """One recognised utterance: when it was said (stream seconds) and what."""

    start_s: float
    end_s: float
    text: str
    confidence: float = -1.0


@dataclass
class Transcription:
    utterances: list[TimedText]
    audio_s: float
    cpu_s: float   # process CPU time spent in VAD + recognition

    @property
    def real_time_factor(self) -> float:
        """CPU seconds per second of audio (< 1: faster than real time on one core)."""
        return self.cpu_s / self.audio_s if self.audio_s > 0 else 0.0


def transcribe(samples: np.ndarray, recognizer: Recognizer, *, t0_s: float = 0.0,
               vad: VadConfig | None = None) -> Transcription:
    """Every utterance in ``samples`` (16 kHz mono int16), with start/end times from ``t0_s``."""
    c0 = time.process_time()
    out = []
    for seg in segment(samples, vad, t0_s):
        result = recognizer.transcribe(seg.samples)
        if result.text:
            out.append(TimedText(seg.start_s, seg.end_s, result.text, result.confidence))
    return Transcription(out, samples.size / SAMPLE_RATE, time.process_time() - c0)
