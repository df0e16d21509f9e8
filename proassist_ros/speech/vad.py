"""Voice activity detection: where speech starts and ends in a stream of 16 kHz PCM.

webrtcvad (the WebRTC GMM detector, a ~100 kB C extension, no torch) labels 30 ms frames; a
small state machine turns labels into utterances. Why the two thresholds differ: the onset must
be quick (barge-in stops the TTS on it, within 0.3 s of the wearer's first word) but not fire on
a cough, so it needs ``onset_frames`` voiced frames out of a short window; the end must not cut
a sentence at a pause between words, so it waits for ``end_silence_s`` of (mostly) silence.
An energy floor keeps near-silent frames out, and a spectral-flatness ceiling keeps broadband
noise out (webrtcvad alone calls loud white noise speech), whatever webrtcvad says about them.

Times are in the stream's clock: each chunk comes with the time of its first sample (the
AudioChunk header stamp), and frame times follow from the sample count.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from proassist_ros.speech.audio import SAMPLE_RATE

FRAME_S = 0.03                               # webrtcvad takes 10, 20 or 30 ms frames
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_S)   # 480


@dataclass(frozen=True)
class VadConfig:
    """How eager the detector is; the defaults suit a head-worn microphone."""

    aggressiveness: int = 3          # webrtcvad mode 0..3 (3: fewest false positives)
    onset_window: int = 6            # frames looked at for an onset (180 ms)
    onset_frames: int = 4            # voiced frames in that window that make an onset
    end_silence_s: float = 0.6       # this much silence ends an utterance
    preroll_s: float = 0.3           # audio kept before the onset (the first phone's start)
    max_utterance_s: float = 20.0    # a longer one is cut (and decoded) here
    min_rms: float = 0.003           # frames quieter than this (of full scale) are silence
    max_flatness: float = 0.45       # spectral flatness above this is noise, not voice
                                     # (white noise ~0.5-0.56; espeak/real speech frames < 0.31)


@dataclass(frozen=True)
class SpeechStart:
    """The wearer started talking at ``t_s`` (stream time of the first voiced frame)."""

    t_s: float


@dataclass(frozen=True)
class SpeechEnd:
    """An utterance: ``start_s``..``end_s`` (voiced span) and its audio with pre-roll."""

    start_s: float
    end_s: float
    samples: np.ndarray
    audio_start_s: float  # stream time of samples[0]

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


Event = SpeechStart | SpeechEnd
_WINDOW = np.hanning(FRAME_SAMPLES).astype(np.float32)


def spectral_flatness(frame: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum: ~0.5+ for white noise, low for
    voiced speech (harmonics)."""
    power = np.abs(np.fft.rfft(frame * _WINDOW[: frame.size])) ** 2 + 1e-10
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))


class VoiceDetector:
    """Streaming VAD: ``feed(samples, t0_s)`` returns the SpeechStart/SpeechEnd events it saw.

    Not thread-safe: one caller feeds it (the ASR node's audio callback)."""

    def __init__(self, config: VadConfig | None = None) -> None:
        import webrtcvad

        self.config = c = config or VadConfig()
        if not 0 <= c.aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness must be 0..3, got {c.aggressiveness}")
        self._vad = webrtcvad.Vad(c.aggressiveness)
        self._end_frames = max(1, round(c.end_silence_s / FRAME_S))
        self._preroll = max(1, round(c.preroll_s / FRAME_S))
        self._max_frames = max(1, round(c.max_utterance_s / FRAME_S))
        self._pending = np.zeros(0, np.int16)
        self._pending_t: float | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new stream)."""
        self._pending = np.zeros(0, np.int16)
        self._pending_t = None
        self._window: collections.deque[tuple[float, np.ndarray, bool]] = collections.deque(
            maxlen=max(self.config.onset_window, self._preroll))
        self._speech: list[tuple[float, np.ndarray, bool]] = []
        self._start_s = 0.0
        self._last_voiced_end = 0.0
        self._silent_run = 0

    @property
    def in_speech(self) -> bool:
        return bool(self._speech)

    def is_voiced(self, frame: np.ndarray) -> bool:
        """One 30 ms frame: loud enough, not flat like noise, and speech per webrtcvad."""
        x = frame.astype(np.float32)
        if float(np.sqrt(np.mean(x**2))) / 32768.0 < self.config.min_rms:
            return False
        if spectral_flatness(x) > self.config.max_flatness:
            return False
        return self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)

    def feed(self, samples: np.ndarray, t0_s: float) -> list[Event]:
        """Mono int16 at 16 kHz whose first sample is at stream time ``t0_s``."""
        if self._pending.size == 0 or self._pending_t is None:
            self._pending_t = t0_s
        buf = np.concatenate([self._pending, samples.astype(np.int16, copy=False)])
        events: list[Event] = []
        n = buf.size // FRAME_SAMPLES
        for i in range(n):
            frame = buf[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
            t = self._pending_t + i * FRAME_S
            events.extend(self._frame(t, frame, self.is_voiced(frame)))
        self._pending = buf[n * FRAME_SAMPLES:]
        self._pending_t = self._pending_t + n * FRAME_S
        return events

    def flush(self) -> list[Event]:
        """End of stream: an utterance in progress ends here."""
        return [self._end()] if self._speech else []

    def _frame(self, t: float, frame: np.ndarray, voiced: bool) -> list[Event]:
        c = self.config
        if not self._speech:
            self._window.append((t, frame, voiced))
            recent = list(self._window)[-c.onset_window:]
            if sum(v for _, _, v in recent) < c.onset_frames:
                return []
            first = next(i for i, (_, _, v) in enumerate(recent) if v)
            self._start_s = recent[first][0]
            keep = list(self._window)[-(self._preroll + len(recent) - first):]
            self._speech = keep
            self._last_voiced_end = t + FRAME_S
            self._silent_run = 0
            self._window.clear()
            return [SpeechStart(self._start_s)]
        self._speech.append((t, frame, voiced))
        if voiced:
            self._last_voiced_end = t + FRAME_S
            self._silent_run = 0
        else:
            self._silent_run += 1
        if self._silent_run >= self._end_frames or len(self._speech) >= self._max_frames:
            return [self._end()]
        return []

    def _end(self) -> SpeechEnd:
        # Keep up to preroll_s of the trailing silence: the recogniser wants a little of it.
        cut = self._last_voiced_end + self.config.preroll_s
        frames = [(t, f) for t, f, _ in self._speech if t < cut]
        samples = np.concatenate([f for _, f in frames]) if frames else np.zeros(0, np.int16)
        event = SpeechEnd(self._start_s, self._last_voiced_end, samples, frames[0][0])
        self._speech = []
        self._silent_run = 0
        return event


def segment(samples: np.ndarray, config: VadConfig | None = None,
            t0_s: float = 0.0) -> list[SpeechEnd]:
    """Every utterance in a whole recording (16 kHz mono int16)."""
    det = VoiceDetector(config)
    events = det.feed(samples, t0_s) + det.flush()
    return [e for e in events if isinstance(e, SpeechEnd)]
