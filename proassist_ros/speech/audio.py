"""Audio in the form the recogniser wants: 16 kHz mono signed 16-bit PCM (``s16le``).

One place converts whatever arrives (a user's WAV at 44.1 kHz stereo, a microphone at 48 kHz,
espeak-ng's 22.05 kHz) into that form, so the VAD and the recogniser see one format only.
Resampling is polyphase (scipy), exact for any integer rate ratio.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000      # Hz: what webrtcvad and the pocketsphinx en-us model expect
ENCODING = "s16le"       # AudioChunk.encoding: the only one used
MIN_RATE = 8000          # below this, speech has lost what the recogniser needs
MAX_RATE = 192000


class AudioError(ValueError):
    """The audio cannot be used (not a WAV, unsupported format); the message says why."""


@dataclass(frozen=True)
class Audio:
    """Mono int16 samples at ``rate`` Hz, and what the source was (for messages)."""

    samples: np.ndarray
    rate: int = SAMPLE_RATE
    source_rate: int = SAMPLE_RATE
    source_channels: int = 1

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.rate


def to_mono(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved int16 -> mono int16 (the mean of the channels)."""
    if channels <= 1:
        return samples.astype(np.int16, copy=False)
    frames = samples[: samples.size - samples.size % channels].reshape(-1, channels)
    return frames.astype(np.int32).mean(axis=1).round().astype(np.int16)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int = SAMPLE_RATE) -> np.ndarray:
    """int16 mono at ``src_rate`` -> int16 mono at ``dst_rate`` (polyphase, anti-aliased)."""
    if src_rate == dst_rate or samples.size == 0:
        return samples.astype(np.int16, copy=False)
    if not MIN_RATE <= src_rate <= MAX_RATE:
        raise AudioError(f"sample rate {src_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    from scipy.signal import resample_poly

    g = gcd(src_rate, dst_rate)
    out = resample_poly(samples.astype(np.float32), dst_rate // g, src_rate // g)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def pcm_from_bytes(data: bytes, channels: int, rate: int) -> np.ndarray:
    """s16le bytes (AudioChunk.data) -> mono int16 at SAMPLE_RATE."""
    samples = np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")
    return resample(to_mono(samples, channels), rate)


def read_wav(path: str | Path) -> Audio:
    """A PCM WAV (8/16/24/32-bit, any channels, 8-192 kHz) as 16 kHz mono int16.

    Raises AudioError with a one-line reason for anything else (not a file, not a WAV,
    compressed WAV, odd sample width)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"no such file: {path}")
    if path.is_dir():
        raise AudioError(f"is a directory, not a WAV file: {path}")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a PCM WAV file: {path} ({exc})") from None
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    if channels < 1 or rate <= 0:
        raise AudioError(f"bad WAV header in {path}: {channels} channels, {rate} Hz")
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, "<i2")
    elif width == 3:
        b = np.frombuffer(raw[: len(raw) - len(raw) % 3], np.uint8).reshape(-1, 3)
        samples = ((b[:, 2].astype(np.int8).astype(np.int32) << 8) | b[:, 1]).astype(np.int16)
    elif width == 4:
        samples = (np.frombuffer(raw, "<i4") >> 16).astype(np.int16)
    else:
        raise AudioError(f"unsupported WAV sample width {width} bytes in {path}")
    mono = to_mono(samples, channels)
    return Audio(resample(mono, rate), SAMPLE_RATE, rate, channels)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write mono int16 samples as a 16-bit PCM WAV."""
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def render_speech(text: str, path: str | Path, *, voice: str = "en-us", rate_wpm: int = 175,
                  pad_s: float = 0.0) -> Audio:
    """Speak ``text`` with espeak-ng into ``path`` (16 kHz mono WAV, ``pad_s`` of silence on
    each side); returns the audio. For tests, the dataset's spoken turns and demos."""
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AudioError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="proassist_say_") as tmp:
        raw = Path(tmp) / "say.wav"
        proc = subprocess.run([exe, "-v", voice, "-s", str(rate_wpm), "-w", str(raw), text],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not raw.exists():
            raise AudioError(f"espeak-ng failed: {proc.stderr.strip()[-200:]}")
        audio = read_wav(raw)
    pad = np.zeros(int(round(pad_s * SAMPLE_RATE)), np.int16)
    samples = np.concatenate([pad, audio.samples, pad])
    write_wav(path, samples)
    return Audio(samples)
