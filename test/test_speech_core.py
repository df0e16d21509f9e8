"""The ROS-free speech core on real audio: espeak-ng speech, silence, white noise; WAVs of the
wrong rate, stereo, and files that are not WAVs; real pocketsphinx with and without the bias."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from proassist_ros.speech import (
    SAMPLE_RATE,
    AudioError,
    PocketsphinxRecognizer,
    RecognizerError,
    make_recognizer,
    read_wav,
    segment,
    task_sentences,
    transcribe,
    word_errors,
)
from proassist_ros.speech.audio import render_speech

TEA_GOAL = "I want to make a cup of tea."
TEA_RECIPE = ("[Make a cup of tea]\n1. Fill the kettle with water.\n2. Boil the water.\n"
              "3. Put the tea bag in the cup.\n4. Pour the hot water into the cup.")
QUESTION = "Where is the kettle?"


@pytest.fixture(scope="module")
def question(tmp_path_factory):
    """espeak-ng saying QUESTION with 1.0 s of silence on each side (16 kHz)."""
    path = tmp_path_factory.mktemp("say") / "q.wav"
    return path, render_speech(QUESTION, path, pad_s=1.0)


def _speech_span(samples: np.ndarray, level: int = 500) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > level)
    return loud[0] / SAMPLE_RATE, loud[-1] / SAMPLE_RATE


def test_vad_finds_speech_where_it_is(question):
    _, audio = question
    segs = segment(audio.samples)
    first, last = _speech_span(audio.samples)
    assert len(segs) == 1, segs
    assert abs(segs[0].start_s - first) < 0.1 and abs(segs[0].end_s - last) < 0.15, (
        segs[0].start_s, segs[0].end_s, first, last)
    # the utterance's audio starts before the onset (pre-roll) and covers the speech
    assert segs[0].audio_start_s < segs[0].start_s
    assert segs[0].samples.size / SAMPLE_RATE >= segs[0].end_s - segs[0].start_s


def test_vad_hears_nothing_in_silence_or_white_noise():
    rng = np.random.default_rng(7)
    assert segment(np.zeros(5 * SAMPLE_RATE, np.int16)) == []
    for level in (300, 3000, 12000):  # quiet hiss to loud static
        noise = rng.normal(0, level, 5 * SAMPLE_RATE).clip(-32768, 32767).astype(np.int16)
        assert segment(noise) == [], level


def test_vad_finds_speech_under_noise(question):
    _, audio = question
    rng = np.random.default_rng(3)
    noisy = (audio.samples + rng.normal(0, 600, audio.samples.size)).clip(-32768, 32767)
    segs = segment(noisy.astype(np.int16))
    assert len(segs) == 1 and abs(segs[0].start_s - _speech_span(audio.samples)[0]) < 0.15


def test_streamed_vad_equals_whole_file(question):
    """Fed in 50 ms chunks with stamps (as the ASR node does), the same utterance results."""
    from proassist_ros.speech import VoiceDetector
    from proassist_ros.speech.vad import SpeechEnd, SpeechStart

    _, audio = question
    det, events, chunk = VoiceDetector(), [], SAMPLE_RATE // 20
    for i in range(0, audio.samples.size, chunk):
        events += det.feed(audio.samples[i:i + chunk], 100.0 + i / SAMPLE_RATE)
    events += det.feed(np.zeros(SAMPLE_RATE, np.int16), 100.0 + audio.duration_s)
    whole = segment(audio.samples)[0]
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    assert events[0].t_s == pytest.approx(100.0 + whole.start_s, abs=1e-6)
    assert events[1].end_s == pytest.approx(100.0 + whole.end_s, abs=1e-6)


def test_wrong_rate_and_stereo_are_converted(question, tmp_path):
    path, audio = question
    # the same speech at 44.1 kHz stereo (sox), then read back as 16 kHz mono
    import subprocess

    odd = tmp_path / "q44k_stereo.wav"
    subprocess.run(["sox", str(path), "-r", "44100", "-c", "2", str(odd)], check=True)
    back = read_wav(odd)
    assert (back.source_rate, back.source_channels, back.rate) == (44100, 2, SAMPLE_RATE)
    assert back.duration_s == pytest.approx(audio.duration_s, abs=0.01)
    rec = PocketsphinxRecognizer()
    rec.set_task(TEA_GOAL, TEA_RECIPE)
    texts = [u.text for u in transcribe(back.samples, rec).utterances]
    assert word_errors(QUESTION, " ".join(texts))[0] <= 1, texts


def test_unusable_files_are_refused_with_a_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(AudioError, match="not a PCM WAV"):
        read_wav(tmp_path / "notes.txt")
    with pytest.raises(AudioError, match="no such file"):
        read_wav(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="directory"):
        read_wav(tmp_path)
    low = tmp_path / "4k.wav"
    with wave.open(str(low), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(4000)
        w.writeframes(np.zeros(4000, np.int16).tobytes())
    with pytest.raises(AudioError, match="4000 Hz"):
        read_wav(low)


def test_task_bias_turns_wrong_words_right(tmp_path):
    """Real pocketsphinx on espeak-ng speech: the general model gets most words wrong, the
    task-biased model gets the question right."""
    said = "Where did I put the tea bag?"
    audio = render_speech(said, tmp_path / "bag.wav", pad_s=1.0)
    off = PocketsphinxRecognizer(bias=False)
    on = PocketsphinxRecognizer(bias=True)
    on.set_task(TEA_GOAL, TEA_RECIPE)
    assert on.search == "task" and "where did i put the tea bag" in on.sentences
    hyp_on = " ".join(u.text for u in transcribe(audio.samples, on).utterances)
    hyp_off = " ".join(u.text for u in transcribe(audio.samples, off).utterances)
    assert word_errors(said, hyp_on)[0] == 0, hyp_on
    assert word_errors(said, hyp_off)[0] >= 2, hyp_off


def test_a_result_does_not_depend_on_what_was_decoded_before(tmp_path):
    """pocketsphinx carries its cepstral mean from one utterance to the next; without a reset
    the same goal sentence came back right first and wrong after another utterance."""
    goal = render_speech("I want to make a tomato and cucumber salad.", tmp_path / "g.wav")
    other = render_speech("How long will this take?", tmp_path / "o.wav")
    rec = PocketsphinxRecognizer()
    rec.set_task("I want to make a tomato and cucumber salad.",
                 "[Make a tomato and cucumber salad]\n1. Slice the tomato.\n2. Slice the cucumber.")
    first = rec.transcribe(goal.samples).text
    rec.transcribe(other.samples)
    assert [rec.transcribe(goal.samples).text for _ in range(2)] == [first, first]


def test_shifted_passes_vote(question):
    """Each shift is a real decode; the text most shifts agree on wins, else the best score."""
    _, audio = question
    rec = PocketsphinxRecognizer()
    rec.set_task(TEA_GOAL, TEA_RECIPE)
    passes = [rec._decode(np.concatenate([np.zeros(k, np.int16), audio.samples]))
              for k in rec.shifts]
    texts = [t for t, _ in passes]
    top = max(set(texts), key=texts.count)
    want = top if texts.count(top) > 1 else max(passes, key=lambda p: p[1])[0]
    assert rec.transcribe(audio.samples).text == want
    with pytest.raises(RecognizerError, match="shifts"):
        PocketsphinxRecognizer(shifts=(0, 400))


def test_recognition_is_faster_than_real_time(question):
    _, audio = question
    rec = PocketsphinxRecognizer()
    rec.set_task(TEA_GOAL, TEA_RECIPE)
    assert transcribe(audio.samples, rec).real_time_factor < 1.0


def test_task_sentences_cover_questions_objects_and_steps():
    s = task_sentences(TEA_GOAL, TEA_RECIPE)
    for expected in ("i want to make a cup of tea", "what's the next step", "how much is left",
                     "where is the tea bag", "i can't find the kettle",
                     "did i already boil the water", "fill the kettle with water"):
        assert expected in s, expected
    assert task_sentences() and "where is the kettle" not in task_sentences()


def test_missing_faster_whisper_or_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(RecognizerError, match="asr_model_dir"):
        make_recognizer("faster-whisper", "")
    with pytest.raises(RecognizerError, match="not a directory"):
        make_recognizer("faster-whisper", str(tmp_path / "nope"))
    with pytest.raises(RecognizerError, match="faster-whisper"):
        make_recognizer("faster-whisper", str(tmp_path))  # the package is not installed here
    with pytest.raises(RecognizerError, match="unknown asr_backend"):
        make_recognizer("vosk")


def test_word_errors():
    assert word_errors("What's the next step?", "what's the next step") == (0, 4)
    assert word_errors("Where is the kettle?", "where is kettle now") == (2, 4)


def test_proassist_asr_prints_one_line_per_utterance(question, tmp_path, capsys):
    import subprocess

    from proassist_ros.cli import main

    path, audio = question
    recipe = tmp_path / "recipe.txt"
    recipe.write_text(TEA_RECIPE)
    odd = tmp_path / "q22k_stereo.wav"  # the wrong rate and two channels: converted
    subprocess.run(["sox", str(path), "-r", "22050", "-c", "2", str(odd)], check=True)
    assert main(["asr", str(odd), "--goal", TEA_GOAL, "--recipe", str(recipe)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out
    start, end, text = lines[0].split(maxsplit=2)
    first, last = _speech_span(audio.samples)
    assert abs(float(start) - first) < 0.1 and abs(float(end) - last) < 0.15, lines[0]
    assert word_errors(QUESTION, text)[0] == 0, text
    assert "resampled from 22050 Hz" in err and "downmixed" in err
