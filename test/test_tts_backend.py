"""The real pyttsx3/espeak-ng backend and aplay playback, without ROS.

espeak's WAV bytes differ between runs, so audio is judged by duration and RMS. The rate test
guards a real bug: pyttsx3's queued setProperty and unsynchronised espeak calls let rate
changes go missing (environment.md / pyttsx3_backend.py), so alternating rates must stick.
"""

from __future__ import annotations

import threading

import pytest

from proassist_ros.tts import (
    AudioPlayer,
    NullAudioBackend,
    TtsError,
    make_backend,
    wav_info,
)
from proassist_ros.tts.pyttsx3_backend import Pyttsx3Backend

SENTENCE = "Now take the knife and cut the tomato in half."


class ListLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(f"I {msg}")

    def warning(self, msg: str) -> None:
        self.lines.append(f"W {msg}")

    def error(self, msg: str) -> None:
        self.lines.append(f"E {msg}")


@pytest.fixture(scope="module")
def backend():
    b = Pyttsx3Backend("en-us", rate=170, play_audio=False)
    yield b
    b.close()


def test_synthesizes_a_plausible_english_wav(backend, tmp_path):
    assert backend.voice_id.lower().endswith("en-us")
    wav = tmp_path / "one.wav"
    duration = backend.synthesize(SENTENCE, wav)
    info = wav_info(wav)
    assert info.duration_s == pytest.approx(duration)
    assert 0.5 < info.duration_s < 10.0, info
    assert info.sample_rate == 22050 and info.channels == 1
    assert info.rms > 0.02, info  # speech, not silence (espeak at volume 1: ~0.08)
    assert not list(tmp_path.glob(".*part"))  # the temporary name is gone


def test_rate_and_volume_changes_apply_every_time(tmp_path):
    slow = Pyttsx3Backend(rate=120, volume=1.0, play_audio=False)
    fast = Pyttsx3Backend(rate=300, volume=0.2, play_audio=False)
    durations: dict[str, list[float]] = {"slow": [], "fast": []}
    rms: dict[str, list[float]] = {"slow": [], "fast": []}
    for i in range(4):  # alternate: both share the one engine thread
        for name, b in (("slow", slow), ("fast", fast)):
            wav = tmp_path / f"{name}{i}.wav"
            durations[name].append(b.synthesize(SENTENCE, wav))
            rms[name].append(wav_info(wav).rms)
    assert min(durations["slow"]) > 2.0 * max(durations["fast"]), durations
    assert max(durations["slow"]) - min(durations["slow"]) < 0.1, durations
    assert min(rms["slow"]) > 3.0 * max(rms["fast"]), rms


def test_each_wav_gets_its_own_complete_audio(backend, tmp_path):
    """runAndWait can return before espeak has written the file; the next utterance must not
    steal or truncate it (seen here before the backend waited for the driver's notification)."""
    long_text = " ".join([SENTENCE] * 20)
    long_s = backend.synthesize(long_text, tmp_path / "long.wav")
    short_s = backend.synthesize(SENTENCE, tmp_path / "short.wav")
    assert wav_info(tmp_path / "long.wav").duration_s == pytest.approx(long_s)
    assert wav_info(tmp_path / "short.wav").duration_s == pytest.approx(short_s)
    assert 15 * short_s < long_s < 25 * short_s


def test_unknown_voice_falls_back_to_en_us_with_a_warning():
    log = ListLog()
    b = Pyttsx3Backend("xx-no-such-voice", play_audio=False, logger=log)
    assert b.voice_id.lower().endswith("en-us")
    assert any("no voice 'xx-no-such-voice'" in line for line in log.lines)


def test_bad_requests_raise_tts_error_and_the_engine_keeps_working(backend, tmp_path):
    with pytest.raises(TtsError):
        backend.synthesize("   ", tmp_path / "empty.wav")
    with pytest.raises(TtsError):
        backend.synthesize(SENTENCE, tmp_path / "missing_dir" / "x.wav")
    assert backend.synthesize("Still here.", tmp_path / "ok.wav") > 0.3
    with pytest.raises(ValueError):
        Pyttsx3Backend(volume=1.5)


def test_speak_without_a_sound_card_writes_wav_only_and_says_so_once(tmp_path):
    log = ListLog()
    player = AudioPlayer(command=("false",), logger=log)  # what aplay does with no sound card
    b = Pyttsx3Backend(player=player, logger=log)
    first = b.speak(SENTENCE, tmp_path / "a.wav")
    second = b.speak("And again.", tmp_path / "b.wav")
    assert not first.played and not second.played and not first.cancelled
    assert wav_info(tmp_path / "a.wav").duration_s == pytest.approx(first.audio_s)
    assert (tmp_path / "b.wav").exists()
    assert sum("audio playback off" in line for line in log.lines) == 1
    temp = b.speak("No file kept.")  # output_dir = "": nothing left behind
    assert temp.wav_path is None and temp.audio_s > 0
    b.close()


def test_missing_player_is_reported_once():
    log = ListLog()
    player = AudioPlayer(command=("no-such-player-binary",), logger=log)
    assert not player.available
    assert not player.play(__file__, threading.Event(), timeout_s=1.0)
    assert sum("not found" in line for line in log.lines) == 1


def test_playback_runs_to_the_end_or_stops_on_cancel(backend, tmp_path):
    wav = tmp_path / "x.wav"
    backend.synthesize("Short.", wav)
    assert AudioPlayer(command=("true",)).play(wav, threading.Event(), timeout_s=5.0)
    # A "player" that would run for 60 s: cancel must end it at once.
    stuck = AudioPlayer(command=("sh", "-c", "exec sleep 60", "player"))
    cancel = threading.Event()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(stuck.play(wav, cancel, timeout_s=60)))
    t.start()
    cancel.set()
    t.join(5.0)
    assert result == [False] and stuck.available  # cancelled is not "broken"


def test_speak_cancelled_before_playback_is_not_played(tmp_path):
    b = Pyttsx3Backend(player=AudioPlayer(command=("true",)))
    cancel = threading.Event()
    cancel.set()
    res = b.speak(SENTENCE, tmp_path / "c.wav", cancel)
    assert res.cancelled and not res.played and res.audio_s > 0
    b.close()


def test_make_backend_falls_back_to_null_only_when_the_engine_fails(monkeypatch):
    assert isinstance(make_backend(play_audio=False), Pyttsx3Backend)
    import proassist_ros.tts.pyttsx3_backend as mod

    def broken(*args, **kwargs):
        raise TtsError("cannot start pyttsx3/espeak: OSError: libespeak-ng.so.1 missing")

    monkeypatch.setattr(mod, "Pyttsx3Backend", broken)
    log = ListLog()
    b = make_backend(logger=log)
    assert isinstance(b, NullAudioBackend)
    assert [line for line in log.lines if line.startswith("E TTS disabled")]
