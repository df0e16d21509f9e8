"""ProAssist's pairwise matching metric (spec §5.1) on hand-built cases with known answers.

Most cases use a lookup embedder whose cosines are chosen exactly (one-hot vectors, or a vector at a
known angle), so every expected count and cost follows from the spec's formulas by hand; one case
runs the real default MiniLM embedder.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from proassist_ros.eval.metrics import (
    DATASET_WINDOWS,
    ORIGINAL_QUIRKS,
    MatchResult,
    aggregate,
    corpus_bleu,
    frame_index,
    macro_average,
    pairwise_match,
    select_theta,
    tokenize,
    window_for,
)
from proassist_ros.eval.theta import local_maxima

DIM = 8


def onehot(k: int) -> np.ndarray:
    v = np.zeros(DIM)
    v[k] = 1.0
    return v


def at_cos(c: float, base: int = 0, other: int = 1) -> np.ndarray:
    """A unit vector whose cosine with onehot(base) is exactly-ish c."""
    return c * onehot(base) + math.sqrt(max(0.0, 1 - c * c)) * onehot(other)


class Lookup:
    """embed= callable from a text → vector table; records every call."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.table[t] for t in texts])


def never_called(texts: list[str]) -> np.ndarray:
    raise AssertionError(f"embed must not be called, got {texts}")


POUR, STEEP, SUGAR = "pour the hot water into the cup", "let the tea steep for three minutes", "add one spoon of sugar"
EMB = Lookup({POUR: onehot(0), STEEP: onehot(1), SUGAR: onehot(2), "pour water now": at_cos(0.95),
              "wipe the table": at_cos(0.4), "half related": at_cos(0.5), "the opposite": -onehot(0)})
D1 = 0.3 * (1 / 5) ** 1.5  # D for a 1-frame offset in the default (-2.5, 2.5) s window at 2 fps


def test_perfect_match():
    refs = [(5.0, POUR), (12.0, STEEP), (20.0, SUGAR)]
    r = pairwise_match(refs, refs, embed=EMB)
    assert (r.matched, r.matched_before_filter, r.missed, r.redundant) == (3, 3, 0, 0)
    assert r.precision == r.recall == r.f1 == r.jaccard == 1.0
    assert r.missing_rate == r.redundant_rate == 0.0
    assert r.semantic_score == pytest.approx(1.0) and r.time_diff == 0.0
    assert [(p.pred_index, p.ref_index, p.correct) for p in r.pairs] == [(0, 0, True), (1, 1, True), (2, 2, True)]
    assert r.bleu()["bleu_4"] == pytest.approx(1.0)


def test_all_missed_and_empty_inputs():
    refs = [(5.0, POUR), (12.0, STEEP)]
    r = pairwise_match([], refs, embed=never_called)
    assert (r.matched, r.missed, r.redundant, r.missed_refs) == (0, 2, 0, (0, 1))
    assert (r.precision, r.recall, r.f1, r.missing_rate) == (0.0, 0.0, 0.0, 1.0)
    empty = pairwise_match([], [], embed=never_called)
    assert (empty.matched, empty.missed, empty.redundant, empty.f1, empty.semantic_score) == (0, 0, 0, 0.0, 0.0)


def test_all_redundant():
    r = pairwise_match([(1.0, POUR), (1.5, STEEP), (9.0, SUGAR)], [], embed=never_called)
    assert (r.matched, r.missed, r.redundant, r.redundant_preds) == (0, 0, 3, (0, 1, 2))
    assert (r.precision, r.recall, r.redundant_rate, r.jaccard) == (0.0, 0.0, 1.0, 0.0)


def test_out_of_window_everything_counts_as_missed_and_redundant():
    r = pairwise_match([(40.0, POUR)], [(5.0, POUR)], embed=never_called)  # no pair in reach: nothing embedded
    assert (r.matched, r.missed, r.redundant) == (0, 1, 1)


# assembly101 window (-2.0, 4.0) s = (-4, 8) frames: a prediction may lead its reference by 4 s
# but lag it by only 2 s. Reference at 10 s.
@pytest.mark.parametrize("pred_t, ok", [(6.0, True), (5.5, False), (8.5, True), (12.0, True), (12.5, False)])
def test_early_and_late_predictions(pred_t, ok):
    r = pairwise_match([(pred_t, POUR)], [(10.0, POUR)], window_s=window_for("assembly101"), embed=EMB)
    assert (r.matched, r.missed, r.redundant) == ((1, 0, 0) if ok else (0, 1, 1))
    if ok:
        frames = abs(10.0 - pred_t) * 2
        assert r.time_diff == pytest.approx(frames / 2)
        assert r.pairs[0].cost == pytest.approx(0.3 * (frames / 8) ** 1.5)  # D reaches 0.3 at the far edge


def test_semantic_mismatch_below_threshold():
    r = pairwise_match([(10.0, "wipe the table")], [(10.0, POUR)], embed=EMB)
    (pair,) = r.pairs
    assert pair.score == pytest.approx(0.4) and not pair.correct
    assert (r.matched, r.matched_before_filter, r.missed, r.redundant) == (0, 1, 0, 0)
    assert r.precision == r.recall == r.f1 == 0.0 and r.semantic_score == 0.0


def test_threshold_is_strict_and_semantic_score_quirk_is_inclusive():
    preds, refs = [(10.0, "half related")], [(10.0, POUR)]
    r = pairwise_match(preds, refs, embed=EMB)
    assert r.pairs[0].score == pytest.approx(0.5) and r.matched == 0 and r.semantic_score == 0.0
    q = pairwise_match(preds, refs, embed=EMB, semantic_score_inclusive=True)  # the original averages s >= 0.5
    assert q.matched == 0 and q.semantic_score == pytest.approx(0.5)


def test_negative_cosine_and_abs_cosine_quirk():
    preds, refs = [(10.0, "the opposite")], [(10.0, POUR)]
    r = pairwise_match(preds, refs, embed=EMB)  # C = 1 - cos = 2 > silence (1 + D): redundant
    assert (r.matched_before_filter, r.missed, r.redundant) == (0, 1, 1)
    q = pairwise_match(preds, refs, embed=EMB, abs_cosine=True)  # 1 - |cos| = 0: a perfect match
    assert q.matched == 1 and q.pairs[0].score == pytest.approx(1.0)


def test_competing_predictions_closest_wins():
    r = pairwise_match([(9.0, POUR), (10.5, POUR)], [(10.0, POUR)], embed=EMB)
    assert [(p.pred_index, p.ref_index) for p in r.pairs] == [(1, 0)] and r.redundant_preds == (0,)
    assert r.pairs[0].cost == pytest.approx(D1)


def test_competing_predictions_semantics_against_distance():
    # Reference and a paraphrase at frame 20, the exact text one frame late (frame 21). Frame 20 has
    # no silent slot (its reference fills it), so leaving the paraphrase redundant costs 1 + D1,
    # leaving the late one redundant costs 1 (its own silent frame).
    def run(cos: float) -> MatchResult:
        emb = Lookup({POUR: onehot(0), "pour water now": at_cos(cos)})
        return pairwise_match([(10.0, "pour water now"), (10.5, POUR)], [(10.0, POUR)], embed=emb)

    r = run(0.9)  # late exact: D1 + 1 + D1 = 1.054 < paraphrase: 0.1 + 1 = 1.1
    assert [p.pred_index for p in r.pairs] == [1] and r.redundant_preds == (0,)
    r = run(0.99)  # paraphrase: 0.01 + 1 = 1.01 < 1.054
    assert [p.pred_index for p in r.pairs] == [0] and r.redundant_preds == (1,)
    assert r.pairs[0].cost == pytest.approx(0.01)


def test_silence_on_a_reference_frame_is_one_frame_away():
    # As in the original's one-column-per-frame matrix, a frame holding a reference has no silent
    # column: a prediction there pays 1 + D1 to go silent, so a pair costing 1.01 is still matched.
    def run(cos: float) -> MatchResult:
        return pairwise_match([(10.0, "x")], [(10.0, POUR)], embed=Lookup({POUR: onehot(0), "x": at_cos(cos)}))

    assert (run(-0.01).matched_before_filter, run(-0.01).redundant) == (1, 0)  # 1.01 < 1 + D1
    assert (run(-0.05).matched_before_filter, run(-0.05).redundant) == (0, 1)  # 1.05 > 1 + D1


def test_several_utterances_at_one_frame():
    r = pairwise_match([(10.0, STEEP), (10.0, POUR)], [(10.0, POUR), (10.0, STEEP)], embed=EMB)
    assert sorted((p.pred_index, p.ref_index) for p in r.pairs) == [(0, 1), (1, 0)] and r.f1 == 1.0
    crowd = pairwise_match([(10.0, POUR)] * 3, [(10.0, STEEP)], embed=EMB)  # each prediction still gets a column
    assert crowd.matched_before_filter + crowd.redundant == 3 and crowd.matched == 0
    # a same-frame-only window (±0.4 s at 2 fps): the frame itself must offer a column per prediction
    alone = pairwise_match([(10.0, POUR)] * 3, [(10.0, STEEP)], window_s=(-0.4, 0.4), embed=EMB)
    assert (alone.matched_before_filter, alone.redundant, alone.missed) == (1, 2, 0)


def test_embeds_each_text_only_for_pairs_in_reach():
    emb = Lookup(EMB.table)
    pairwise_match([(10.0, POUR), (50.0, SUGAR)], [(10.5, STEEP), (90.0, SUGAR)], embed=emb)
    assert emb.calls == [[POUR, STEEP]]


def test_drop_zero_cost_edges_quirk():
    preds = refs = [(10.0, POUR)]
    assert pairwise_match(preds, refs, embed=EMB).matched == 1
    q = pairwise_match(preds, refs, embed=EMB, **ORIGINAL_QUIRKS)  # exact-zero edge vanishes in the original
    assert (q.matched_before_filter, q.missed, q.redundant) == (0, 1, 1)


def test_int_window_quirk_truncation_and_distance_scale():
    # 0.29 s * 100 fps = 28.999999999999996: int() loses the frame that lies inside the window
    preds, refs = [(0.71, POUR)], [(1.0, POUR)]
    assert pairwise_match(preds, refs, window_s=(-0.5, 0.29), fps=100, embed=EMB).matched == 1
    assert pairwise_match(preds, refs, window_s=(-0.5, 0.29), fps=100, embed=EMB, int_window=True).matched == 0
    # at 3 fps, 2.5 s is 7.5 frames: D is normalised by 7.5 (documented) or by int(7.5) = 7 (original)
    preds, refs = [(0.0, "pour water now")], [(7 / 3, POUR)]
    exact = pairwise_match(preds, refs, fps=3, embed=EMB).pairs[0].cost
    trunc = pairwise_match(preds, refs, fps=3, embed=EMB, int_window=True).pairs[0].cost
    assert exact == pytest.approx(0.05 + 0.3 * (7 / 7.5) ** 1.5) and trunc == pytest.approx(0.05 + 0.3)


def test_default_minilm_embedder_tells_paraphrase_from_unrelated():
    preds = [(10.0, "pour hot water into the mug"), (20.0, "tighten the screws on the wheel")]
    refs = [(10.5, "pour the hot water into the cup"), (20.0, "put the tea bag in the cup")]
    r = pairwise_match(preds, refs)
    assert [p.correct for p in r.pairs] == [True, False]
    assert r.pairs[0].score > 0.5 > r.pairs[1].score and r.precision == r.recall == 0.5


def frame_oracle(gen: list[str], ref: list[str], vec: dict, window: tuple[int, int]) -> tuple[int, int, int, int]:
    """Spec §5.1 written out literally: one row/column per frame, C + D, silent rows dropped, a full
    matching of the talking rows (dense, so no exact-zero quirk). Returns (correct, pairs, missed, redundant)."""
    from scipy.optimize import linear_sum_assignment

    n = len(gen)
    cost = np.array([[float(bool(g) != bool(r)) for r in ref] for g in gen])
    off = np.arange(n)[None, :] - np.arange(n)[:, None]
    rg = max(-window[0], window[1])
    dist = np.where((off >= window[0]) & (off <= window[1]), 0.3 * (np.abs(off) / rg) ** 1.5, np.inf)
    for i, j in zip(*np.nonzero(np.isfinite(dist))):
        if gen[i] and ref[j]:
            cost[i, j] = 1 - float(np.clip(vec[gen[i]] @ vec[ref[j]], -1, 1))
    rows = [i for i in range(n) if gen[i]]
    r_idx, c_idx = linear_sum_assignment((cost + dist)[rows])
    pairs = [(rows[a], b) for a, b in zip(r_idx, c_idx) if ref[b]]
    correct = sum(1 - cost[i, j] > 0.5 for i, j in pairs)
    return correct, len(pairs), sum(map(bool, ref)) - len(pairs), len(rows) - len(pairs)


def test_agrees_with_the_frame_by_frame_formulation():
    rng = np.random.default_rng(7)
    for trial in range(40):
        n = int(rng.integers(5, 50))
        vec = {f"w{k}": v / np.linalg.norm(v) for k, v in enumerate(rng.normal(size=(6, 4)))}
        gen, ref = ([f"w{rng.integers(6)}" if rng.random() < 0.3 else "" for _ in range(n)] for _ in range(2))
        window = window_for(["narration", "ego4d", "assembly101", "holoassist"][trial % 4])
        r = pairwise_match([((k + 1) / 2, g) for k, g in enumerate(gen) if g],
                           [((k + 1) / 2, x) for k, x in enumerate(ref) if x],
                           window_s=window, embed=Lookup(vec))
        expected = frame_oracle(gen, ref, vec, (int(window[0] * 2), int(window[1] * 2)))
        assert (r.matched, r.matched_before_filter, r.missed, r.redundant) == expected, f"trial {trial}"


@pytest.mark.parametrize("kwargs, preds, match", [
    ({}, [(1.0,)], "predictions\\[0\\] must be a \\(time_s, text\\) pair"),
    ({}, [(-1.0, POUR)], "negative time"),
    ({}, [(float("nan"), POUR)], "invalid time"),
    ({}, [(1.0, "  ")], "no text"),
    ({"fps": 0}, [(1.0, POUR)], "fps must be"),
    ({"window_s": (0.5, 2.0)}, [(1.0, POUR)], "must contain 0"),
    ({"window_s": (-0.2, 0.2), "int_window": True}, [(1.0, POUR)], "narrower than one frame"),
    ({"embed": lambda t: np.ones((len(t), 3))}, [(1.0, POUR)], "unit vectors"),
    ({"embed": lambda t: np.ones(3)}, [(1.0, POUR)], "expected \\(N, dim\\)"),
])
def test_bad_input_is_named(kwargs, preds, match):
    with pytest.raises(ValueError, match=match):
        pairwise_match(preds, [(1.0, POUR)], **({"embed": EMB} | kwargs))


def test_dataset_windows_match_the_spec_table():
    frames = {k: tuple(int(t * 2) for t in w) for k, w in DATASET_WINDOWS.items()}
    assert frames == {"narration": (-5, 5), "ego4d": (-8, 17), "epickitchens": (-3, 6), "holoassist": (-3, 5),
                      "egoexolearn": (-4, 7), "assembly101": (-4, 8), "wtag": (-6, 12), "default": (-5, 5)}
    assert window_for("ego4d/narration_val_L0_I1") == (-2.5, 2.5)  # narration checked first
    assert window_for("ego4d/dialog-klg_val") == (-4.0, 8.5)
    assert window_for("EgoExoLearn/dialog") == (-2.0, 3.5)
    assert window_for("my_kitchen_bags") == DATASET_WINDOWS["default"]


def test_frame_index_matches_stream_timestamps():
    fps = 2.0
    assert [frame_index((k + 1) / fps, fps) for k in range(5)] == [1, 2, 3, 4, 5]
    assert frame_index(1.24, fps) == 2 and frame_index(1.26, fps) == 3


def test_aggregate_pools_counts_and_pairs_exactly():
    v1 = pairwise_match([(10.0, POUR), (30.0, STEEP)], [(10.5, POUR)], embed=EMB)  # 1 correct, 1 redundant
    v2 = pairwise_match([(5.0, "pour water now"), (8.0, "wipe the table")], [(5.0, POUR), (8.0, POUR), (40.0, SUGAR)],
                        embed=EMB)  # 1 correct (0.95), 1 mismatched (0.4), 1 missed
    a = aggregate([v1, v2])
    assert (a.matched, a.matched_before_filter, a.missed, a.redundant, a.num_videos) == (2, 3, 1, 1, 2)
    assert a.precision == pytest.approx(2 / 4) and a.recall == pytest.approx(2 / 4)
    assert a.jaccard == pytest.approx(2 / 5)
    assert a.semantic_score == pytest.approx((1.0 + 0.95) / 2)
    assert a.time_diff == pytest.approx((0.5 + 0.0) / 2)
    excl = aggregate([MatchResult(pairs=v.pairs, missed_refs=v.missed_refs, redundant_preds=v.redundant_preds,
                                  denominators_include_filtered=False) for v in (v1, v2)])
    assert excl.precision == pytest.approx(2 / 3) and excl.recall == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="different settings"):
        aggregate([v1, excl])
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])


def test_macro_average_is_a_mean_of_subset_scores():
    a = pairwise_match([(10.0, POUR)], [(10.0, POUR), (20.0, STEEP), (30.0, SUGAR)], embed=EMB)  # P 1, R 1/3
    b = pairwise_match([(10.0, POUR), (20.0, STEEP), (30.0, SUGAR)], [(10.0, POUR)], embed=EMB)  # P 1/3, R 1
    m = macro_average({"wtag": a, "holoassist": b})
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.5)  # mean of the two F1s, not 2PR/(P+R) = 2/3
    assert m["redundant"] == 1.0 and m["subsets"] == ["holoassist", "wtag"]
    json.dumps(m)


def test_to_dict_is_json_ready():
    r = pairwise_match([(10.0, POUR), (30.0, STEEP)], [(10.5, POUR), (50.0, SUGAR)], embed=EMB)
    d = json.loads(json.dumps(r.to_dict(with_pairs=True)))
    assert d["f1"] == pytest.approx(0.5) and d["missed_refs"] == [1] and d["redundant_preds"] == [1]
    assert d["pairs"][0]["pred_text"] == POUR and d["pairs"][0]["time_diff"] == 0.5
    assert {"precision", "recall", "jaccard", "bleu_1", "matched_before_filter"} <= set(d)


def test_bleu_known_values():
    assert tokenize("Don't pour, STIR!") == ["don't", "pour", "stir"]
    assert corpus_bleu(["the cat sat on the mat"], ["The cat sat on the mat."]) == {
        "bleu_1": 1.0, "bleu_2": 1.0, "bleu_3": 1.0, "bleu_4": 1.0}
    # hyp "the cat the cat" vs ref "the cat sat": clipped unigrams 2/4, bigrams 1/3 ("the cat" x2 clipped
    # to 1, "cat the" absent), no trigram match; the hypothesis is longer: no brevity penalty
    s = corpus_bleu(["the cat the cat"], ["the cat sat"])
    assert s["bleu_1"] == pytest.approx(2 / 4) and s["bleu_2"] == pytest.approx(math.sqrt(2 / 4 * 1 / 3))
    assert s["bleu_3"] == 0.0 and s["bleu_4"] == 0.0
    short = corpus_bleu(["the cat"], ["the cat sat"])  # brevity penalty exp(1 - 3/2)
    assert short["bleu_1"] == pytest.approx(math.exp(-0.5))
    assert corpus_bleu([], []) == {"bleu_1": 0.0, "bleu_2": 0.0, "bleu_3": 0.0, "bleu_4": 0.0}
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        corpus_bleu(["a"], [])


THETAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_theta_selection_two_local_maxima():
    f1 = [0.20, 0.30, 0.35, 0.31, 0.28, 0.33, 0.42, 0.40, 0.30]  # peaks at 0.3 (0.35) and 0.7 (0.42)
    assert local_maxima(THETAS, f1) == [(0.3, 0.35), (0.7, 0.42)]
    assert select_theta(THETAS, f1) == 0.7
    swapped = [0.20, 0.30, 0.45, 0.31, 0.28, 0.33, 0.42, 0.40, 0.30]
    assert select_theta(THETAS, swapped) == 0.3
    order = [8, 2, 5, 0, 7, 1, 4, 6, 3]  # the sweep may come in any order
    assert select_theta([THETAS[i] for i in order], [f1[i] for i in order]) == 0.7


def test_theta_selection_plateaus_ties_and_edges():
    assert select_theta(THETAS[:6], [0.1, 0.3, 0.3, 0.3, 0.3, 0.2]) == 0.3  # plateau 0.2-0.5: lower middle
    assert local_maxima(THETAS[:5], [0.1, 0.3, 0.3, 0.4, 0.2]) == [(0.4, 0.4)]  # a shelf is not a peak
    assert select_theta(THETAS[:5], [0.1, 0.4, 0.2, 0.4, 0.1]) == 0.2  # equal peaks: the smaller θ
    rising = [0.1, 0.2, 0.3, 0.4]
    assert select_theta(THETAS[:4], rising) == 0.4
    with pytest.raises(ValueError, match="extend the sweep"):
        select_theta(THETAS[:4], rising, allow_edge=False)
    assert select_theta(THETAS[:5], [0.5, 0.1, 0.3, 0.2, 0.6], allow_edge=False) == 0.3


@pytest.mark.parametrize("thetas, f1s, match", [
    ([0.1, 0.2], [0.3], "2 θ values but 1 F1"),
    ([], [], "empty"),
    ([0.1, 0.1], [0.3, 0.4], "repeat"),
    ([0.1, 0.2], [0.3, float("nan")], "non-finite"),
])
def test_theta_selection_rejects_bad_sweeps(thetas, f1s, match):
    with pytest.raises(ValueError, match=match):
        select_theta(thetas, f1s)
