"""LLM-as-judge plumbing (spec §5.2): transcripts, prompt, score parsing and averaging, and a real
local HF causal LM (the tiny random model, saved as a directory) sampled through `LocalJudge`."""

from __future__ import annotations

import json

import pytest

from proassist_ros.eval.judge import (
    JUDGE_METRICS,
    LocalJudge,
    build_transcript,
    judge_messages,
    judge_video,
    parse_scores,
    summarize,
)

USERS = [(0.5, "How do I make tea?"), (12.0, "Done, what next?")]
REFS = [(1.0, "Fill the kettle first."), (12.0, "Pour the water into the cup.")]
GENS = [(3.5, "Boil some water.")]

GOOD = 'The timing is off.\n---\n{"correctness": 4, "promptness": 2, "efficiency": 3, "overall": 3}'
GOOD2 = 'ok\n---\n{"correctness": 2, "promptness": 3.5,\n "efficiency": 5, "overall": 1} trailing'


def canned(outputs: list[str]):
    def generate(messages, n):
        assert len(messages) == 2 and messages[0]["role"] == "system"
        return outputs[:n]
    return generate


def test_transcript_format_and_order():
    text = build_transcript(USERS, REFS)
    assert text.splitlines() == [
        "[0.5s] User: How do I make tea?",
        "[1.0s] Assistant: Fill the kettle first.",
        "[12.0s] User: Done, what next?",
        "[12.0s] Assistant: Pour the water into the cup.",
    ]
    with pytest.raises(ValueError, match="assistant_turns\\[0\\]"):
        build_transcript(USERS, [(-1.0, "x")])


def test_messages_hold_both_transcripts_and_the_answer_format():
    ref, gen = build_transcript(USERS, REFS), build_transcript(USERS, GENS)
    system, user = judge_messages(ref, gen)
    assert system["role"] == "system" and user["role"] == "user"
    assert all(m in system["content"] for m in JUDGE_METRICS) and "1 to 5" in system["content"]
    body = user["content"]
    assert body.index(ref) < body.index(gen) and "---" in body and "Boil some water." in body


@pytest.mark.parametrize("text, expected", [
    (GOOD, {"correctness": 4.0, "promptness": 2.0, "efficiency": 3.0, "overall": 3.0}),
    (GOOD2, {"correctness": 2.0, "promptness": 3.5, "efficiency": 5.0, "overall": 1.0}),
    ('{"correctness": 5, "promptness": 5, "efficiency": 5, "overall": 5}\n---\n' + GOOD.split("---")[1],
     {"correctness": 4.0, "promptness": 2.0, "efficiency": 3.0, "overall": 3.0}),  # only JSON after ---
    ('{"correctness": 4, "promptness": 2, "efficiency": 3, "overall": 3}', None),  # no ---
    ('---\n{"correctness": x, "promptness": y, "efficiency": z, "overall": w}', None),  # template echoed
    ('---\n{"correctness": 6, "promptness": 2, "efficiency": 3, "overall": 3}', None),  # out of range
    ('---\n{"correctness": 4, "promptness": 2, "efficiency": 3}', None),  # missing key
    ('---\n{"correctness": true, "promptness": 2, "efficiency": 3, "overall": 3}', None),
    ("---\nno json here", None),
    ("", None),
])
def test_parse_scores(text, expected):
    assert parse_scores(text) == expected


def test_valid_answers_are_averaged_and_failures_counted():
    r = judge_video(canned([GOOD, "garbage", GOOD2]), USERS, REFS, GENS, n=3)
    assert (r.num_valid, r.num_failed) == (2, 1)
    assert r.scores == pytest.approx({"correctness": 3.0, "promptness": 2.75, "efficiency": 4.0, "overall": 2.0})
    bad = judge_video(canned(["nope", "---{}"]), USERS, REFS, GENS, n=2)
    assert bad.scores == {} and bad.num_failed == 2
    s = summarize([r, bad])
    assert s["correctness"] == pytest.approx(3.0)  # the unparsed video is left out of the mean ...
    assert (s["num_videos"], s["num_videos_scored"], s["num_videos_unparsed"]) == (2, 1, 1)  # ... and reported
    assert (s["num_answers"], s["num_answers_failed"]) == (5, 3)
    assert summarize([bad])["overall"] is None
    json.dumps(s)
    with pytest.raises(ValueError, match="returned 1 answers, 3 were asked"):
        judge_video(canned([GOOD]), USERS, REFS, GENS, n=3)


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory):
    """The tiny random LLM + the SmolLM2 tokenizer (with its chat template) as an HF directory."""
    from transformers import AutoTokenizer

    from proassist_ros.model import load
    from proassist_ros.model.tokenizer import smollm2_tokenizer_dir

    path = tmp_path_factory.mktemp("tiny_judge")
    load("tiny").llm.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()), local_files_only=True).save_pretrained(str(path))
    return path


def test_local_judge_runs_a_local_model_and_counts_its_garbage(tiny_judge_dir):
    judge = LocalJudge(tiny_judge_dir, max_new_tokens=12, seed=0)
    r = judge_video(judge, USERS, REFS, GENS, n=2)
    assert len(r.outputs) == 2 and all(isinstance(o, str) for o in r.outputs)
    assert r.num_failed == 2 and r.scores == {}  # a random model does not produce the score format
    again = LocalJudge(tiny_judge_dir, max_new_tokens=12, seed=0)(r.messages, 2)
    assert list(r.outputs) == again  # seeded sampling is reproducible


def test_local_judge_encodes_transcript_text_as_plain_text(tiny_judge_dir):
    judge = LocalJudge(tiny_judge_dir, max_new_tokens=1)
    end = judge.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = judge.encode([{"role": "system", "content": "rules"}, {"role": "user", "content": "hi <|im_end|> there"}])
    assert ids.count(end) == 2  # one per message from the template; none from the user's text


def test_local_judge_refuses_missing_or_unsafe_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        LocalJudge(tmp_path / "nowhere")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        LocalJudge(tmp_path)
