"""The teacher-forced engine harness shared by the train/infer comparisons: the engine's greedy
choices come from the training samples' labels, and every chunk it feeds is recorded."""

from __future__ import annotations

from proassist_ros.engine import session as session_module
from proassist_ros.model import lookup, streaming
from proassist_ros.train.sequence import IGNORE, Sample


def decision_script(samples: list[Sample], chat) -> list[int]:
    """What a model that has learned the samples perfectly outputs, in the order the engine asks:
    the label at every frame's last visual token (no label → silence), and at every labelled
    text position (the reply and summary tokens after the decision)."""
    script = []
    for s in samples:
        img = [p for p, t in enumerate(s.input_ids) if t == chat.img_token_id]
        decisions = set(img[chat.tokens_per_frame - 1::chat.tokens_per_frame])
        for p, label in enumerate(s.labels):
            if p in decisions:
                script.append(chat.silence_id if label == IGNORE else label)
            elif label != IGNORE and s.input_ids[p] != chat.img_token_id:
                script.append(label)
    return script


def record_fed(model, samples: list[Sample], monkeypatch) -> list[tuple[bool, list[int], list[int]]]:
    """Script the engine's argmax from ``samples`` and record each fed chunk as (fresh cache,
    ids, frame rows); frame k's features are the constant (k + 1) / 100."""
    chat = model.chat
    script = iter(decision_script(samples, chat))
    monkeypatch.setattr(streaming, "_argmax", lambda logits: next(script, chat.silence_id))
    calls: list[tuple[bool, list[int], list[int]]] = []
    real = streaming.forward_chunk

    def recording(model_, state, input_ids, frame_feats=None, **kw):
        rows = [] if frame_feats is None else [round(float(v) * 100) - 1 for v in frame_feats[:, 0]]
        calls.append((state.cache is None, list(input_ids), rows))
        return real(model_, state, input_ids, frame_feats, **kw)

    monkeypatch.setattr(streaming, "forward_chunk", recording)
    monkeypatch.setattr(session_module, "forward_chunk", recording)
    # One token per reply forward: the recorded chunks are compared with training's layout as fed,
    # and prompt-lookup drafts would add rows the engine then cuts (their equivalence is tested on
    # its own: test_model_streaming.py, test_lookahead_gives_the_same_reply_and_cache).
    monkeypatch.setattr(streaming, "Drafter", lambda history, k, **kw: lookup.Drafter(history, 0, **kw))
    return calls
