"""ROS-free text-to-speech core: backends, the speech queue and the worker thread.

The TTS node (proassist_ros.ros.tts_node) is a thin rclpy shell around these; tests drive them
directly with fake backends, without DDS.
"""

from proassist_ros.constants import PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_URGENT
from proassist_ros.tts.backend import (
    AudioPlayer,
    Log,
    NullAudioBackend,
    SpeakResult,
    TtsBackend,
    TtsError,
    WavBackend,
)
from proassist_ros.tts.speech_queue import (
    Active,
    QueueStats,
    SpeechItem,
    SpeechQueue,
)
from proassist_ros.tts.wav import WavInfo, wav_info
from proassist_ros.tts.worker import BARGED_IN, MANIFEST, SpeechWorker, UtteranceRecord, wav_name


def make_backend(voice: str = "en-us", rate: int = 170, volume: float = 1.0, *,
                 play_audio: bool = True, logger: Log | None = None,
                 pace_without_device: bool = False) -> TtsBackend:
    """Pyttsx3Backend; NullAudioBackend (with the reason logged) only if it cannot start."""
    from proassist_ros.tts.pyttsx3_backend import Pyttsx3Backend

    try:
        return Pyttsx3Backend(voice, rate, volume, play_audio=play_audio, logger=logger,
                              pace_without_device=pace_without_device)
    except TtsError as exc:  # a bad parameter (ValueError) is not "no engine": it propagates
        return NullAudioBackend(str(exc), logger=logger)


__all__ = [
    "BARGED_IN", "MANIFEST", "PRIORITY_HIGH", "PRIORITY_LOW", "PRIORITY_NORMAL", "PRIORITY_URGENT", "Active",
    "AudioPlayer", "NullAudioBackend", "QueueStats", "SpeakResult", "SpeechItem", "SpeechQueue",
    "SpeechWorker", "TtsBackend", "TtsError", "UtteranceRecord", "WavBackend", "WavInfo",
    "make_backend", "wav_info", "wav_name",
]
