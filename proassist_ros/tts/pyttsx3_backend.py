"""pyttsx3 (espeak-ng driver) as a TtsBackend, with the engine confined to one thread.

Why it looks like this (pitfalls checked on this project's machine, see environment.md):

* pyttsx3 caches one engine per driver name per process and espeak can be initialised only once,
  and the engine must be created and run in the same thread (pyttsx3#327). So there is exactly
  ONE engine thread per process, shared by every Pyttsx3Backend; callers submit jobs to it.
* Only ``save_to_file`` + ``runAndWait`` is used, never ``say`` (a ``say`` after a save
  overwrites the last saved file); playback is ``aplay`` on the written file (see backend.py).
* Properties set through ``engine.setProperty`` are queued in pyttsx3's proxy and can be dropped
  by ``runAndWait``'s ``endLoop``; even direct espeak calls raced with synthesis here (60 runs
  alternating rates gave random durations, once an empty WAV). Voice, rate and volume are
  therefore applied with espeak calls bracketed by ``espeak_Synchronize`` (80/80 correct), and
  only when they change.
* The voice is chosen explicitly (espeak's first voice is Afrikaans); each WAV is written to a
  fresh temporary name and renamed into place, so a file that exists is complete.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import io
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proassist_ros.tts.backend import AudioPlayer, Log, TtsError, WavBackend
from proassist_ros.tts.wav import wav_info

DEFAULT_VOICE = "en-us"


class _DropSavedNotice(io.TextIOBase):
    """stdout filter for the espeak driver's ``print("Audio saved to …")`` (one per utterance)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._skip_newline = False

    def write(self, s: str) -> int:
        if s.startswith("Audio saved to "):
            self._skip_newline = True
            return len(s)
        if self._skip_newline and s == "\n":
            self._skip_newline = False
            return len(s)
        self._skip_newline = False
        return self._inner.write(s)

    def flush(self) -> None:
        self._inner.flush()


class _EspeakThread:
    """The process-wide thread that owns the pyttsx3 espeak engine; runs submitted jobs in order."""

    _instance: _EspeakThread | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple, cf.Future]] = (
            queue.SimpleQueue())
        self._engine: Any = None
        self._espeak: Any = None
        self._applied: tuple[str, int, float] | None = None
        self._finished = threading.Event()  # set from espeak's thread once a WAV is written
        # Daemon: espeak cannot be terminated cleanly from Python (pyttsx3's own comment).
        self._thread = threading.Thread(target=self._run, name="espeak-engine", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> _EspeakThread:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the engine thread and return its result (re-raising its error)."""
        fut: cf.Future = cf.Future()
        self._jobs.put((fn, args, fut))
        try:
            return fut.result(timeout=timeout_s)
        except cf.TimeoutError as exc:
            raise TtsError(f"espeak engine did not answer within {timeout_s:.0f} s") from exc

    def _run(self) -> None:
        while True:
            fn, args, fut = self._jobs.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - delivered to the caller
                fut.set_exception(exc)

    # --- everything below runs on the engine thread only ---------------------------------

    def start_engine(self) -> None:
        if self._engine is None:
            import pyttsx3
            from pyttsx3.drivers import _espeak

            self._engine = pyttsx3.init("espeak")
            self._espeak = _espeak
            # Connected once: callbacks registered again would pile up on the cached engine.
            self._engine.connect("finished-utterance", lambda **_: self._finished.set())

    def apply(self, voice: str, rate: int, volume: float) -> str:
        """Make (voice, rate, volume) current; returns the espeak voice identifier in use."""
        self.start_engine()
        es = self._espeak
        if self._applied != (voice, rate, volume):
            es.Synchronize()
            if es.SetVoiceByName(voice.encode()) != 0:
                raise TtsError(f"espeak has no voice {voice!r}")
            es.SetParameter(es.RATE, int(rate), 0)
            es.SetParameter(es.VOLUME, round(volume * 100), 0)
            es.Synchronize()
            self._applied = (voice, rate, volume)
        current = es.GetCurrentVoice()
        return current.contents.identifier.decode() if current else voice

    def synthesize(self, text: str, path: str, props: tuple[str, int, float],
                   timeout_s: float) -> float:
        self.apply(*props)
        final = Path(path)
        part = final.with_name(f".{final.name}.{os.getpid()}.part")
        part.unlink(missing_ok=True)
        try:
            with contextlib.redirect_stdout(_DropSavedNotice(sys.stdout)):
                self._finished.clear()
                self._engine.save_to_file(text, str(part))
                try:
                    self._engine.runAndWait()
                except RuntimeError:
                    with contextlib.suppress(RuntimeError):  # "run loop already started": reset
                        self._engine.endLoop()
                    raise
                # runAndWait may return while espeak is still synthesizing (measured: 28 ms
                # return, WAV written 343 ms later); the next save_to_file would then redirect
                # this utterance's audio. Wait for the driver's "finished" notification.
                if not self._finished.wait(timeout_s):
                    raise TtsError(f"espeak did not finish within {timeout_s:.0f} s")
                self._espeak.Synchronize()  # and let its callback return before the next job
            if not part.exists():
                raise TtsError(f"espeak wrote no audio for {text[:40]!r} into {final.parent}")
            duration = wav_info(part).duration_s
            if duration <= 0.0:
                raise TtsError(f"espeak produced empty audio for {text[:40]!r}")
            os.replace(part, final)
            return duration
        finally:
            part.unlink(missing_ok=True)


class Pyttsx3Backend(WavBackend):
    """Offline speech with pyttsx3 + espeak-ng: WAVs at 22.05 kHz mono, played with ``aplay``.

    Construction starts (or reuses) the engine thread and checks the voice, so a missing
    espeak-ng shows up here as TtsError, where the caller can fall back and say why.
    """

    name = "pyttsx3-espeak"

    def __init__(self, voice: str = DEFAULT_VOICE, rate: int = 170, volume: float = 1.0, *,
                 play_audio: bool = True, player: AudioPlayer | None = None,
                 logger: Log | None = None, timeout_s: float = 30.0,
                 pace_without_device: bool = False) -> None:
        if not 0.0 <= volume <= 1.0:
            raise ValueError(f"volume must be in [0, 1], got {volume}")
        if rate <= 0:
            raise ValueError(f"rate must be positive words/min, got {rate}")
        super().__init__(play_audio=play_audio, player=player, logger=logger,
                         pace_without_device=pace_without_device)
        self._engine = _EspeakThread.get()
        self._timeout_s = timeout_s
        try:
            self.voice_id = self._engine.call(self._engine.apply, voice, rate, volume)
        except TtsError:
            if voice == DEFAULT_VOICE:
                raise
            self._log.warning(f"espeak has no voice {voice!r}; using {DEFAULT_VOICE!r}")
            voice = DEFAULT_VOICE
            self.voice_id = self._engine.call(self._engine.apply, voice, rate, volume)
        except Exception as exc:  # ImportError, OSError (no libespeak-ng), RuntimeError
            raise TtsError(f"cannot start pyttsx3/espeak: {type(exc).__name__}: {exc}") from exc
        self._props = (voice, int(rate), float(volume))

    def synthesize(self, text: str, wav_path: Path) -> float:
        if not text.strip():
            raise TtsError("empty text")
        if not Path(wav_path).parent.is_dir():  # espeak would fail inside a C callback
            raise TtsError(f"no such directory: {Path(wav_path).parent}")
        # Long texts synthesize at ~250x real time here; allow for that on slow machines.
        timeout = self._timeout_s + len(text) / 100.0
        return self._engine.call(self._engine.synthesize, text, str(wav_path), self._props,
                                 timeout, timeout_s=timeout + 5.0)
