"""The TTS backend interface, WAV playback through ``aplay``, and the no-engine fallback.

A backend turns text into a WAV file (``synthesize``) and, for ``speak``, plays that file.
Playback is a separate ``aplay`` process rather than pyttsx3's ``say()``: a process can be killed,
which is what lets an interrupt stop an utterance mid-sentence, and ``say()`` must never be mixed
with ``save_to_file()`` on one engine (environment.md). A headless box has no sound card; then
playback is switched off once, logged once, and speech continues as WAV files only.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

LOG = logging.getLogger("proassist_ros.tts")


class Log(Protocol):
    """What the core needs from a logger (satisfied by logging.Logger and rclpy's logger)."""

    def info(self, msg: str) -> object: ...
    def warning(self, msg: str) -> object: ...
    def error(self, msg: str) -> object: ...


class TtsError(RuntimeError):
    """Synthesis failed (engine missing, engine error, no audio produced)."""


@dataclass(frozen=True)
class SpeakResult:
    """The outcome of one ``speak``: where the audio is and whether it was heard."""

    wav_path: Path | None  # None: no audio kept (temporary file removed, or no engine)
    audio_s: float  # duration of the synthesized audio
    synth_s: float  # wall time spent synthesizing
    played: bool  # played to the end through the audio device
    cancelled: bool  # stopped by an interrupt / stop()


@runtime_checkable
class TtsBackend(Protocol):
    """Text -> audio, driven by ONE worker thread; ``stop`` may be called from any thread."""

    name: str

    def synthesize(self, text: str, wav_path: Path) -> float:
        """Write ``text`` as a WAV at ``wav_path`` (appears atomically); returns its duration."""
        ...

    def speak(self, text: str, wav_path: Path | None = None,
              cancel: threading.Event | None = None) -> SpeakResult:
        """Synthesize and play; keeps the WAV at ``wav_path`` if given. ``cancel`` stops it."""
        ...

    def stop(self) -> None:
        """Stop the utterance in progress (playback ends now; synthesis output is discarded)."""
        ...

    def close(self) -> None:
        """Release resources; the backend is not used afterwards."""
        ...


class AudioPlayer:
    """Plays WAV files with an external command (``aplay -q``), killable for interrupts.

    The first failure (command missing, or it exits non-zero: "no soundcards found") turns
    playback off for the rest of the run and is logged once; callers keep their WAV files.
    """

    def __init__(self, command: tuple[str, ...] = ("aplay", "-q"), logger: Log | None = None,
                 poll_s: float = 0.02) -> None:
        self.command = tuple(command)
        self._log = logger or LOG
        self._poll_s = poll_s
        self.available = shutil.which(self.command[0]) is not None
        self._reported = False
        if not self.available:
            self._disable(f"`{self.command[0]}` not found")

    def _disable(self, why: str) -> None:
        self.available = False
        if not self._reported:
            self._reported = True
            self._log.warning(f"audio playback off ({why}); speech is written as WAV files only")

    def play(self, wav: Path, cancel: threading.Event, timeout_s: float) -> bool:
        """Play ``wav``; True when it played to the end, False when cancelled or failed."""
        if not self.available:
            return False
        try:
            proc = subprocess.Popen([*self.command, str(wav)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            self._disable(f"cannot run {self.command[0]}: {exc}")
            return False
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                proc.wait(timeout=self._poll_s)
                break
            except subprocess.TimeoutExpired:
                if cancel.is_set() or time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    return False
        err = proc.communicate()[1].decode(errors="replace").strip()
        if proc.returncode != 0 and not cancel.is_set():
            self._disable(f"{self.command[0]} exited {proc.returncode}: {err[-200:]}")
            return False
        return proc.returncode == 0 and not cancel.is_set()


class WavBackend:
    """Shared ``speak``/``stop``: synthesize to a WAV, then play it unless cancelled."""

    name = "wav"

    def __init__(self, *, play_audio: bool = True, player: AudioPlayer | None = None,
                 logger: Log | None = None, pace_without_device: bool = False) -> None:
        self._log = logger or LOG
        self._play_audio = play_audio
        self._pace = pace_without_device
        self._player = player if player is not None else (
            AudioPlayer(logger=self._log) if play_audio else None)
        self._lock = threading.Lock()
        self._current: threading.Event | None = None
        self._tmpdir = tempfile.TemporaryDirectory(prefix="proassist_tts_")
        self._count = 0

    def synthesize(self, text: str, wav_path: Path) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def speak(self, text: str, wav_path: Path | None = None,
              cancel: threading.Event | None = None) -> SpeakResult:
        cancel = cancel if cancel is not None else threading.Event()
        with self._lock:
            self._current = cancel
            self._count += 1
            target = wav_path or Path(self._tmpdir.name) / f"utt_{self._count}.wav"
        try:
            t0 = time.monotonic()
            audio_s = self.synthesize(text, target)
            synth_s = time.monotonic() - t0
            played = False
            if not cancel.is_set() and self._play_audio and self._player is not None:
                played = self._player.play(target, cancel, timeout_s=audio_s + 5.0)
            if not played and self._pace and not cancel.is_set():
                # No sound card: take as long as the audio would (cancellable), so "speaking"
                # and barge-in behave as on a rig. Off by default: without a device the honest
                # default is "written, not played", at once.
                cancel.wait(audio_s)
            return SpeakResult(wav_path, audio_s, synth_s, played, cancel.is_set())
        finally:
            with self._lock:
                self._current = None
            if wav_path is None:
                target.unlink(missing_ok=True)

    def stop(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.set()

    def close(self) -> None:
        self.stop()
        self._tmpdir.cleanup()


class NullAudioBackend:
    """Used only when no TTS engine can be started: speaks nothing, says so once, keeps running.

    Never a default: the node falls back to it after Pyttsx3Backend failed, and logs why.
    """

    name = "null"

    def __init__(self, reason: str = "no TTS engine", logger: Log | None = None) -> None:
        self.reason = reason
        (logger or LOG).error(f"TTS disabled ({reason}): guidance is logged, not spoken")

    def synthesize(self, text: str, wav_path: Path) -> float:
        raise TtsError(f"no TTS engine ({self.reason})")

    def speak(self, text: str, wav_path: Path | None = None,
              cancel: threading.Event | None = None) -> SpeakResult:
        return SpeakResult(None, 0.0, 0.0, False, bool(cancel and cancel.is_set()))

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
