"""The dataset's user turns as speech: rendered into a bag's audio topic, and heard back.

``proassist synth --audio`` renders each user turn with espeak-ng (en-us, 175 wpm) starting at
the turn's time, and stores the track as AudioChunk messages on ``/proassist/audio`` (100 ms
each, stamped like the camera frames). ``proassist eval --asr`` takes that audio (or renders the
turns the same way when a bag has none) through the same VAD + recogniser as the ASR node, and
puts each recognised turn at its recognised start time in place of the text turns.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from proassist_ros.constants import AUDIO, NS_PER_S, absolute
from proassist_ros.speech.audio import SAMPLE_RATE, pcm_from_bytes, render_speech
from proassist_ros.speech.wer import word_errors

AUDIO_TOPIC = absolute(AUDIO)
CHUNK_S = 0.1
GAP_S = 0.3  # a turn that would overlap the previous one starts this long after it


def render_turns(turns: list) -> list[tuple[float, np.ndarray]]:
    """(start time, 16 kHz samples) per turn, in time order; overlapping turns are pushed back."""
    out: list[tuple[float, np.ndarray]] = []
    free_at = 0.0
    with tempfile.TemporaryDirectory(prefix="proassist_turns_") as tmp:
        for i, turn in enumerate(sorted(turns, key=lambda u: u.t)):
            audio = render_speech(turn.text, Path(tmp) / f"{i}.wav")
            start = max(float(turn.t), free_at)
            out.append((start, audio.samples))
            free_at = start + audio.duration_s + GAP_S
    return out


def audio_track(turns: list, tail_s: float = 1.0) -> np.ndarray:
    """One track from stream time 0 holding every rendered turn at its time."""
    placed = render_turns(turns)
    end = max((t + s.size / SAMPLE_RATE for t, s in placed), default=0.0) + tail_s
    track = np.zeros(int(np.ceil(end * SAMPLE_RATE)), np.int16)
    for t, samples in placed:
        i = int(round(t * SAMPLE_RATE))
        track[i:i + samples.size] = samples
    return track


def track_chunks(track: np.ndarray, chunk_s: float = CHUNK_S) -> Iterator[tuple[float, bytes]]:
    """(start time, s16le bytes) of consecutive chunks of ``track``."""
    n = int(round(chunk_s * SAMPLE_RATE))
    for i in range(0, track.size, n):
        yield i / SAMPLE_RATE, track[i:i + n].astype("<i2").tobytes()


def read_bag_audio(bag: str | Path, t0_ns: int) -> np.ndarray | None:
    """The bag's /proassist/audio as one 16 kHz track from stream time 0; None if it has none."""
    from proassist_ros.data.bags import open_bag, typestore

    ts = typestore()
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == AUDIO_TOPIC]
        if not conns:  # (an empty list would mean "every message" to rosbags)
            return None
        pieces = []
        for conn, _, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec
            pieces.append(((stamp - t0_ns) / NS_PER_S,
                           pcm_from_bytes(bytes(msg.data), msg.channels, msg.sample_rate)))
    if not pieces:
        return None
    end = max(t + s.size / SAMPLE_RATE for t, s in pieces)
    track = np.zeros(int(np.ceil(end * SAMPLE_RATE)), np.int16)
    for t, samples in pieces:
        i = max(0, int(round(t * SAMPLE_RATE)))
        track[i:i + samples.size] = samples[: max(0, track.size - i)]
    return track


@dataclasses.dataclass
class SpokenTurns:
    """What eval --asr heard in one bag, against the text turns."""

    turns: list             # data.episode.Turn at the recognised start times
    errors: int             # word edits against the text turns (all of the bag's turns)
    words: int
    audio: str              # "bag" (/proassist/audio) or "rendered" (espeak-ng, on the fly)
    audio_s: float
    cpu_s: float


_RECOGNIZER = None


def spoken_turns(episode, bag: str | Path, t0_ns: int, *, bias: bool = True) -> SpokenTurns:
    """The bag's user turns as the ASR hears them (its audio, or the turns rendered)."""
    global _RECOGNIZER
    from proassist_ros.data.episode import Turn
    from proassist_ros.speech.asr import PocketsphinxRecognizer
    from proassist_ros.speech.transcribe import transcribe

    if _RECOGNIZER is None or _RECOGNIZER.bias != bias:
        _RECOGNIZER = PocketsphinxRecognizer(bias=bias)
    rec = _RECOGNIZER
    task = episode.task
    if task is not None:
        rec.set_task(task.goal, task.knowledge, list(task.steps))
    else:
        rec.set_task()
    track = read_bag_audio(bag, t0_ns)
    source = "bag"
    if track is None:
        track, source = audio_track(episode.user_turns), "rendered"
    c0 = time.process_time()
    heard = transcribe(track, rec)
    cpu = time.process_time() - c0
    turns = [Turn(u.start_s, u.text) for u in heard.utterances]
    errors, words = word_errors(" ".join(u.text for u in sorted(episode.user_turns,
                                                                 key=lambda u: u.t)),
                                " ".join(t.text for t in turns))
    return SpokenTurns(turns, errors, words, source, track.size / SAMPLE_RATE, cpu)
