"""Names and numbers that several rooms share, each with exactly one home.

This module sits at the bottom of the import graph: it imports nothing, so every layer — the
ROS-free ones (model, engine, data, eval, train, runtime, tts) included — can use it without an
upward arrow and without rclpy. Three families live here:

- time: nanoseconds per second, for every header-stamp conversion;
- Guidance kinds and priorities: the values of ``msg/Guidance.msg``'s ``KIND_*`` and
  ``PRIORITY_*`` constants (``test_constants`` checks that the two agree), their names, and the
  priority / interrupt each kind is spoken with;
- topic names: the camera, the dataset bags' topics, and the assistant's interface (relative
  names under the nodes' namespace, and their absolute form in the default namespace).
"""

from __future__ import annotations

# ---- time ------------------------------------------------------------------------------------
NS_PER_S = 1_000_000_000
"""Nanoseconds per second: builtin_interfaces/Time is (sec, nanosec); stamps are integer ns."""

# ---- model quantization (model/quantize.py) --------------------------------------------------
QUANTIZE_CHOICES = ("auto", "none", "int8")
# The default of every user-facing entry (node parameter, ``proassist eval``, ``proassist demo``):
# int8 where it runs (CPU, fp32), none elsewhere. ``model.load()`` itself defaults to "none".
DEFAULT_QUANTIZE = "auto"

# ---- vision tower (model/vision.py) -----------------------------------------------------------
PATCH_STEMS = ("patch", "conv")  # SiglipVisionConfig.patch_stem: how pixels become the patch grid
DEFAULT_PATCH_STEM = PATCH_STEMS[0]  # SigLIP's own; a config without the key means it

# ---- Guidance kinds and priorities (msg/Guidance.msg) ----------------------------------------
KIND_INSTRUCTION, KIND_CORRECTION, KIND_CONFIRMATION, KIND_ANSWER, KIND_PROGRESS_SUMMARY, KIND_OTHER = range(6)
PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_HIGH, PRIORITY_URGENT = range(4)

KIND_VALUES: dict[str, int] = {
    "instruction": KIND_INSTRUCTION,
    "correction": KIND_CORRECTION,
    "confirmation": KIND_CONFIRMATION,
    "answer": KIND_ANSWER,
    "progress_summary": KIND_PROGRESS_SUMMARY,
    "other": KIND_OTHER,            # ProAssist's "other" intent
}
"""Guidance.kind of each kind name (the names are ProAssist's dialogue acts, spec §6.1)."""
KIND_NAMES: dict[int, str] = {v: k for k, v in KIND_VALUES.items()}

KIND_URGENCY: dict[int, tuple[int, bool]] = {
    KIND_INSTRUCTION: (PRIORITY_NORMAL, False),
    KIND_CORRECTION: (PRIORITY_HIGH, True),     # a warning cuts in
    KIND_CONFIRMATION: (PRIORITY_LOW, False),
    KIND_ANSWER: (PRIORITY_HIGH, False),        # the wearer is waiting for it
    KIND_PROGRESS_SUMMARY: (PRIORITY_LOW, False),
    KIND_OTHER: (PRIORITY_NORMAL, False),
}
"""(priority, interrupt) a TTS node gets with each kind: the engine's live labels and the
dataset's reference turns follow the same policy."""

# ---- topics ----------------------------------------------------------------------------------
NAMESPACE = "proassist"
"""The nodes' default namespace (bringup's ``--namespace``, the launch file's ``namespace``)."""

MAX_TURN_CHARS = 2000
"""Longest user utterance or goal fed to the model; longer text is cut here (and counted), so a
1 MB message cannot flood the context (about 500 tokens at most; the embedded model's L is 1024)."""
MAX_KNOWLEDGE_CHARS = 8000
"""Longest recipe (task knowledge) fed to the model."""
MAX_SOURCE_CHARS = 64
"""Longest ``source`` name of a MarkStep call shown to the model."""
MAX_TASK_STEPS = 500
"""Most steps a task keeps (TaskState, step matching); more are cut and counted."""

MAX_IMAGE_PIXELS = 8192 * 8192
"""Largest compressed frame decoded (an 8K camera fits); a bigger header is refused unread."""

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = f"{IMAGE_TOPIC}/compressed"   # image_transport's naming

# The assistant's interface, relative to the nodes' namespace (remappable, as ROS names are).
GUIDANCE = "guidance"
TASK_STATE = "task_state"
STATS = "stats"
USER_UTTERANCE = "user_utterance"
USER_UTTERANCE_STAMPED = "user_utterance_stamped"  # proassist_ros/Utterance: placed by its stamp
GUIDE_TASK = "guide_task"      # the GuideTask action
MARK_STEP = "mark_step"        # the MarkStep service
TASK = "task"
AUDIO = "audio"                # proassist_ros/AudioChunk from the microphone node
VOICE_ACTIVITY = "voice_activity"  # proassist_ros/VoiceActivity: onset/end of the wearer's speech


def absolute(name: str, namespace: str = NAMESPACE) -> str:
    """``name`` resolved in ``namespace``: ("guidance", "proassist") → "/proassist/guidance"."""
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


GUIDANCE_TOPIC = absolute(GUIDANCE)
TASK_STATE_TOPIC = absolute(TASK_STATE)
UTTERANCE_TOPIC = absolute(USER_UTTERANCE)
TASK_TOPIC = absolute(TASK)
# Dataset bags only (docs/dataset.md): reference turns and frame captions.
REFERENCE_TOPIC = absolute("reference")
CAPTION_TOPIC = absolute("caption")
