"""Speech in over real DDS: espeak-ng says a question into a WAV, the microphone node plays it
at real time (``--wav``), the ASR node (real webrtcvad + pocketsphinx, biased by a Task on
/proassist/task) publishes voice activity and a stamped Utterance, and the TTS node, in the
middle of a long utterance, is cut off by the wearer's question (barge-in).

Only the physical microphone is replaced (by the file); every other part is the real one.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import OutputDrain, spin_until
from test_assistant_node import camera as camera  # noqa: F401 - fixture
from test_assistant_node import probe as probe  # noqa: F401 - fixture

from proassist_ros.speech import SAMPLE_RATE, normalize, word_errors
from proassist_ros.speech.audio import render_speech

QUESTION = "Where is the kettle?"
TEA_GOAL = "I want to make a cup of tea."
TEA_RECIPE = ("[Make a cup of tea]\n1. Fill the kettle with water.\n2. Boil the water.\n"
              "3. Put the tea bag in the cup.\n4. Pour the hot water into the cup.")
LONG = " ".join(["First wash the cutting board, then dry it with a clean towel."] * 6)
STAMP_TOL_S = 0.15     # utterance start vs where speech starts in the file
CHAIN_STOP_MAX_S = 1.0  # audio onset -> TTS stopped through VAD, DDS and the TTS (reported)
WAIT_S = 60.0           # generous: a loaded 2-core CI machine


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@pytest.mark.dds
def test_microphone_to_asr_to_utterance_and_barge_in(rclpy_context, spawn, tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Bool

    from proassist_ros.msg import AudioChunk, Guidance, Task, TtsStats, Utterance, VoiceActivity
    from proassist_ros.ros.asr_node import LATCHED, RELIABLE

    wav = tmp_path / "question.wav"
    audio = render_speech(QUESTION, wav, pad_s=1.0)
    speech_at = np.flatnonzero(np.abs(audio.samples.astype(np.int32)) > 500)[0] / SAMPLE_RATE

    node = rclpy.create_node("speech_loop_test", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    chunks, voice, utts, speaking, stats = [], [], [], [], []
    node.create_subscription(AudioChunk, "/proassist/audio", chunks.append,
                             qos_profile_sensor_data)
    node.create_subscription(VoiceActivity, "/proassist/voice_activity", voice.append, RELIABLE)
    node.create_subscription(Utterance, "/proassist/user_utterance_stamped", utts.append,
                             RELIABLE)
    node.create_subscription(Bool, "/proassist/tts/speaking", lambda m: speaking.append(m.data),
                             LATCHED)
    node.create_subscription(TtsStats, "/proassist/tts/stats", stats.append, RELIABLE)
    task_pub = node.create_publisher(Task, "/proassist/task", LATCHED)
    guidance_pub = node.create_publisher(Guidance, "/proassist/guidance", RELIABLE)
    task_pub.publish(Task(task_id="t", task_type="make_tea", goal=TEA_GOAL, knowledge=TEA_RECIPE))

    def until(cond, what, log):
        return spin_until(ex, cond, WAIT_S, what, log.text)

    try:
        asr = OutputDrain(spawn(["-m", "proassist_ros.ros.asr_node", "--ros-args"]))
        tts = OutputDrain(spawn(["-m", "proassist_ros.ros.tts_node", "--ros-args",
                                 "-p", "play_audio:=false", "-p", "pace_without_device:=true"]))
        until(lambda: asr.has("task bias: 'I want to make a cup of tea.'"), "the task bias", asr)
        until(lambda: guidance_pub.get_subscription_count() > 0 and speaking, "the TTS", tts)
        msg = Guidance(text=LONG, seq=0, session_id="s", priority=1)
        msg.header.stamp = node.get_clock().now().to_msg()
        guidance_pub.publish(msg)
        until(lambda: speaking and speaking[-1], "the TTS speaking", tts)
        # The file starts once both audio subscribers (ASR, this test) are matched.
        mic = OutputDrain(spawn(["-m", "proassist_ros.ros.mic_node", "--wav", str(wav),
                                 "--ros-args", "-p", "wait_for_subscribers:=2"]))
        until(lambda: utts, "a recognised utterance", asr)
        until(lambda: any(s.barge_ins >= 1 for s in stats), "the barge-in in TtsStats", tts)
    finally:
        ex.shutdown()
        node.destroy_node()

    first = _seconds(chunks[0].header.stamp)
    assert chunks[0].sample_rate == SAMPLE_RATE and chunks[0].encoding == "s16le"
    # every chunk was received, in order, 50 ms apart on the microphone's clock
    steps = np.diff([_seconds(c.header.stamp) for c in chunks])
    assert np.allclose(steps, 0.05, atol=1e-6), steps[:10]
    u = utts[0]
    assert normalize(u.text) == normalize(QUESTION), u.text
    assert word_errors(QUESTION, u.text) == (0, 4)
    assert u.source == "asr:pocketsphinx"
    start, end = _seconds(u.header.stamp) - first, _seconds(u.end_stamp) - first
    assert abs(start - speech_at) < STAMP_TOL_S, (start, speech_at)
    assert speech_at + 0.5 < end < audio.duration_s, (end, audio.duration_s)
    # voice activity: onset at the utterance's start, then its end
    assert [v.speaking for v in voice[:2]] == [True, False]
    assert _seconds(voice[0].header.stamp) == pytest.approx(_seconds(u.header.stamp), abs=1e-3)
    st = next(s for s in stats if s.barge_ins >= 1)
    print(f"chain barge-in: audio onset -> TTS stopped {st.last_barge_in_stop_s * 1000:.0f} ms; "
          f"utterance {start:.3f}-{end:.3f} s (speech from {speech_at:.3f} s)")
    assert 0 <= st.last_barge_in_stop_s <= CHAIN_STOP_MAX_S, st.last_barge_in_stop_s
    for log in (asr, tts, mic):
        assert not log.has("Traceback"), log.text()


@pytest.mark.dds
def test_microphone_without_a_device_says_so_in_one_line(spawn):
    proc = spawn(["-m", "proassist_ros.ros.mic_node", "--ros-args",
                  "-p", "audio_device:=no-such-microphone"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "no-such-microphone" in lines[0], out
    assert "Traceback" not in out


@pytest.mark.dds
def test_asr_node_with_a_missing_backend_says_so(spawn, tmp_path):
    proc = spawn(["-m", "proassist_ros.ros.asr_node", "--ros-args",
                  "-p", "asr_backend:=faster-whisper", "-p", f"asr_model_dir:={tmp_path}/none"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "asr_model_dir" in out and "Traceback" not in out, out


@pytest.mark.dds
def test_spoken_question_enters_the_assistant_where_it_was_said(spawn, camera, probe,  # noqa: F811
                                                              tmp_path):
    """mic --wav -> ASR -> the assistant (tiny model, θ = 1: it speaks at every frame). Frames
    stamped before the wearer started speaking must not carry the question; the first frame at
    or after the Utterance's start stamp does: its guidance is an ANSWER."""
    from test_assistant_node import run_camera, start_node

    from proassist_ros.constants import KIND_ANSWER
    from proassist_ros.msg import Utterance
    from proassist_ros.ros.asr_node import RELIABLE

    wav = tmp_path / "question.wav"
    render_speech("What should I do next?", wav, pad_s=1.0)
    utts: list = []
    probe.node.create_subscription(Utterance, "/proassist/user_utterance_stamped", utts.append,
                                   RELIABLE)
    node = start_node(spawn, probe, camera=camera)
    asr = OutputDrain(spawn(["-m", "proassist_ros.ros.asr_node", "--ros-args"]))
    mic = OutputDrain(spawn(["-m", "proassist_ros.ros.mic_node", "--wav", str(wav),
                             "--ros-args", "-p", "wait_for_subscribers:=1"]))
    probe.wait(lambda: utts, WAIT_S, "the recognised question", on_timeout=asr.text)
    said = _seconds(utts[0].header.stamp)
    # four frames at 2 Hz around the question: 0.75 and 0.25 s before it, 0.25 and 0.75 s after
    run_camera(camera, node, "--count", "4", "--rate", "2", "--start", f"{said - 0.75:.3f}",
               "--width", "64", "--height", "48")
    probe.wait(lambda: any(_seconds(g.header.stamp) > said for g in probe.guidance), WAIT_S,
               "guidance after the question", on_timeout=node.text)
    before = [g for g in probe.guidance if _seconds(g.header.stamp) < said]
    after = sorted((g for g in probe.guidance if _seconds(g.header.stamp) >= said),
                   key=lambda g: _seconds(g.header.stamp))
    assert all(g.kind != KIND_ANSWER for g in before), [(g.kind, g.text) for g in before]
    assert after[0].kind == KIND_ANSWER, [(g.kind, g.text) for g in after]
    for log in (node, asr, mic):
        assert not log.has("Traceback"), log.text()

