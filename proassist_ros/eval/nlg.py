"""Corpus BLEU-1..4 on matched utterance pairs (spec §5.1, "NLG scores on correct pairs").

The original scores correct pairs with nlg-eval / pycocoevalcap after Stanford PTB tokenisation
(a Java jar). Neither is available offline here, so this is a small self-contained corpus BLEU
(Papineni et al. 2002, one reference per hypothesis, as in the original):

* tokens: lower-cased words (letters/digits, an inner apostrophe kept: "don't" is one token);
  punctuation is dropped, as pycocoevalcap's tokenizer drops it. PTB would split "don't" into
  "do n't", so scores can differ slightly from the paper's tooling on contractions.
* clipped n-gram counts and lengths are summed over the corpus; brevity penalty
  exp(1 − r/c) when the total hypothesis length c is below the total reference length r.
* no smoothing: a corpus with no matching n-gram of some order scores 0 for BLEU-n and above
  (pycocoevalcap's tiny epsilon would give ≈1e-9 instead).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, punctuation removed."""
    return _TOKEN.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> dict[str, float]:
    """``{"bleu_1": …, …, "bleu_{max_n}": …}`` for hypothesis i against reference i.

    An empty corpus (no correct pairs) scores 0, as in the original evaluator.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"BLEU needs one reference per hypothesis: {len(hypotheses)} vs {len(references)}")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    hyp_len = ref_len = 0
    clipped = [0] * max_n
    total = [0] * max_n
    for hyp_text, ref_text in zip(hypotheses, references):
        hyp, ref = tokenize(hyp_text), tokenize(ref_text)
        hyp_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, max_n + 1):
            h, r = _ngrams(hyp, n), _ngrams(ref, n)
            clipped[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    scores: dict[str, float] = {}
    if hyp_len == 0:
        return {f"bleu_{n}": 0.0 for n in range(1, max_n + 1)}
    bp = 1.0 if hyp_len >= ref_len else math.exp(1.0 - ref_len / hyp_len)
    log_sum = 0.0
    for n in range(1, max_n + 1):
        if clipped[n - 1] == 0 or math.isinf(log_sum):
            log_sum = -math.inf
        else:
            log_sum += math.log(clipped[n - 1] / total[n - 1])
        scores[f"bleu_{n}"] = 0.0 if math.isinf(log_sum) else bp * math.exp(log_sum / n)
    return scores
