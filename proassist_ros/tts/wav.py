"""Reading back WAV files: duration and loudness, for the utterance log and for tests.

espeak's WAV bytes differ between identical runs (environment.md), so anything that checks audio
compares duration and RMS, never bytes. Only the stdlib ``wave`` module and NumPy are used.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file holds: duration, format and RMS level (0..1 of full scale)."""

    duration_s: float
    sample_rate: int
    channels: int
    rms: float


def wav_info(path: str | Path) -> WavInfo:
    """Duration and RMS of a PCM WAV file (8/16/32-bit); raises ValueError if unreadable."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"cannot read WAV {path}: {exc}") from exc
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None or rate <= 0 or channels <= 0:
        raise ValueError(f"unsupported WAV {path}: {width}-byte samples, {rate} Hz, {channels} ch")
    samples = np.frombuffer(frames, dtype=dtype).astype(np.float64)
    if width == 1:
        samples -= 128.0
    full_scale = float(2 ** (8 * width - 1))
    rms = float(np.sqrt(np.mean(samples**2)) / full_scale) if samples.size else 0.0
    return WavInfo(samples.size / channels / rate, rate, channels, rms)
