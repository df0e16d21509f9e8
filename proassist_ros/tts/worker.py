"""The one thread that speaks: takes items from a SpeechQueue and drives a TtsBackend.

Callers (ROS callbacks) only ``submit`` and never block; synthesis and playback happen here.
Barge-in (``barge_in``/``release``, from voice activity): the utterance in progress stops, older
queued guidance is dropped, nothing is said until the wearer has finished; the time from the
speech onset to the stop is kept in ``last_barge_in_stop_s``.
Each ended or dropped utterance becomes an UtteranceRecord, appended to
``<output_dir>/utterances.jsonl`` when an output directory is set: the spoken order, queue
delay, audio length and drops are then available to tests and to replay evaluation (overlap,
queue delay) without parsing logs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from proassist_ros.tts.backend import LOG, Log, TtsBackend
from proassist_ros.tts.speech_queue import SpeechItem, SpeechQueue

MANIFEST = "utterances.jsonl"
SPOKEN, INTERRUPTED, FAILED, SILENT = "spoken", "interrupted", "failed", "silent"
BARGED_IN = "barge_in"  # cut off because the wearer started talking


@dataclasses.dataclass(frozen=True)
class UtteranceRecord:
    """What happened to one item. ``outcome``: spoken | interrupted | barge_in | failed |
    silent (no engine) | dropped_stale | dropped_overflow | dropped_barge_in."""

    index: int
    outcome: str
    session_id: str
    seq: int
    priority: int
    interrupt: bool
    text: str
    wav: str | None = None
    queue_delay_s: float | None = None
    synth_s: float = 0.0
    audio_s: float = 0.0
    played: bool = False
    error: str = ""


def wav_name(item: SpeechItem) -> str:
    """``<seq>_<session_id>.wav``: sortable per session and safe as a file name."""
    session = re.sub(r"[^A-Za-z0-9_.-]", "_", item.session_id)[:64] or "nosession"
    return f"{item.seq:06d}_{session}.wav"


class SpeechWorker:
    """Owns the backend and its thread. ``on_speaking(bool)`` reports utterance start/end."""

    def __init__(self, backend: TtsBackend, *, maxsize: int = 8, max_age_s: float = 10.0,
                 clock: Callable[[], float] = time.time, output_dir: str | Path | None = None,
                 on_speaking: Callable[[bool], None] | None = None,
                 on_record: Callable[[UtteranceRecord], None] | None = None,
                 logger: Log | None = None) -> None:
        self.backend = backend
        self.queue = SpeechQueue(maxsize, max_age_s, clock, on_drop=self._on_drop)
        self._clock = clock
        self.output_dir = Path(output_dir) if output_dir else None
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self._on_speaking = on_speaking
        self._on_record = on_record
        self._log = logger or LOG
        self._lock = threading.Lock()
        self._index = 0
        self.outcomes: Counter[str] = Counter()
        self.last_barge_in_stop_s = float("nan")  # speech onset -> utterance stopped, seconds
        self._thread = threading.Thread(target=self._run, name="tts-worker", daemon=True)

    def start(self) -> SpeechWorker:
        self._thread.start()
        return self

    def submit(self, item: SpeechItem) -> bool:
        """Queue an utterance (never blocks on audio); False if dropped at once."""
        if not item.text.strip():
            return False
        return self.queue.push(item)

    def barge_in(self, onset_s: float, hold_s: float = 8.0) -> bool:
        """The wearer started talking at ``onset_s`` (this worker's clock): stop speaking now,
        drop queued guidance decided before it, hold the rest until ``release`` (or ``hold_s``).
        True if an utterance was cut off."""
        cut = self.queue.barge_in(onset_s, hold_s)
        if cut is not None:
            self.backend.stop()
        return cut is not None

    def release(self) -> None:
        """The wearer stopped talking: held guidance may be spoken."""
        self.queue.release()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel what is being said, stop the thread, release the backend."""
        self.queue.close()
        self.backend.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.backend.close()

    def _wav_path(self, item: SpeechItem) -> Path | None:
        if self.output_dir is None:
            return None
        path = self.output_dir / wav_name(item)
        n = 1
        while path.exists():  # the same (session, seq) twice: keep both
            path = path.with_name(f"{wav_name(item)[:-4]}_{n}.wav")
            n += 1
        return path

    def _run(self) -> None:
        while (active := self.queue.pop()) is not None:
            item, fields = active.item, {}
            self._speaking(True)
            try:
                fields["queue_delay_s"] = round(self._clock() - item.received_s, 4)
                res = self.backend.speak(item.text, self._wav_path(item), active.cancel)
                outcome = INTERRUPTED if res.cancelled else (SPOKEN if res.audio_s > 0 else SILENT)
                if res.cancelled and active.barge_in_s:
                    outcome = BARGED_IN
                    self.last_barge_in_stop_s = self._clock() - active.barge_in_s[0]
                fields.update(wav=res.wav_path.name if res.wav_path else None,
                              synth_s=round(res.synth_s, 4), audio_s=round(res.audio_s, 4),
                              played=res.played)
            except Exception as exc:  # noqa: BLE001 - one bad utterance must not end speech
                outcome, fields["error"] = FAILED, f"{type(exc).__name__}: {exc}"
                self._log.error(f"TTS failed for seq={item.seq}: {fields['error']}")
            finally:
                self.queue.done()
                self._speaking(False)
            self._record(item, outcome, **fields)

    def _speaking(self, value: bool) -> None:
        if self._on_speaking is not None:
            try:
                self._on_speaking(value)
            except Exception as exc:  # noqa: BLE001 - e.g. publishing during shutdown
                self._log.warning(f"speaking callback failed: {exc}")

    def _on_drop(self, item: SpeechItem, reason: str) -> None:
        self._log.warning(f"dropped guidance seq={item.seq} ({reason}): {item.text[:60]!r}")
        self._record(item, f"dropped_{reason}")

    def _record(self, item: SpeechItem, outcome: str, **fields: object) -> None:
        with self._lock:
            record = UtteranceRecord(index=self._index, outcome=outcome,
                                     session_id=item.session_id, seq=item.seq,
                                     priority=item.priority, interrupt=item.interrupt,
                                     text=item.text, **fields)  # type: ignore[arg-type]
            self._index += 1
            self.outcomes[outcome] += 1
            if self.output_dir is not None:
                with open(self.output_dir / MANIFEST, "a", encoding="utf-8") as f:
                    f.write(json.dumps(dataclasses.asdict(record)) + "\n")
        if outcome in (SPOKEN, INTERRUPTED, SILENT, BARGED_IN):
            self._log.info(f"{outcome} seq={item.seq} session={item.session_id or '-'} "
                           f"({record.audio_s:.1f} s audio, "
                           f"{'played' if record.played else 'not played'}): {item.text[:80]!r}")
        if self._on_record is not None:
            self._on_record(record)
