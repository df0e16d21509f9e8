"""ROS-free speech input: audio conversion, voice activity detection, recognisers, task bias.

The microphone and ASR nodes (proassist_ros.ros.mic_node / asr_node) are thin rclpy shells
around these; ``proassist asr`` and ``proassist eval --asr`` use them directly.
"""

from proassist_ros.speech.asr import (
    BACKENDS,
    PocketsphinxRecognizer,
    Recognizer,
    RecognizerError,
    Transcript,
    make_recognizer,
)
from proassist_ros.speech.audio import SAMPLE_RATE, Audio, AudioError, read_wav, write_wav
from proassist_ros.speech.bias import normalize, task_sentences
from proassist_ros.speech.transcribe import TimedText, Transcription, transcribe
from proassist_ros.speech.vad import SpeechEnd, SpeechStart, VadConfig, VoiceDetector, segment
from proassist_ros.speech.wer import word_errors

__all__ = [
    "BACKENDS", "SAMPLE_RATE", "Audio", "AudioError", "PocketsphinxRecognizer", "Recognizer",
    "RecognizerError", "SpeechEnd", "SpeechStart", "TimedText", "Transcript", "Transcription",
    "VadConfig", "VoiceDetector", "make_recognizer", "normalize", "read_wav", "segment",
    "task_sentences", "transcribe", "word_errors", "write_wav",
]
