"""Hand-computed µAP / R@P90 cases, checked against a straightforward loop.

The naive versions below sort a Python list of (score, correct) pairs (negatives
first among equal scores) and walk thresholds one by one: a separate
implementation from bench.scoring.pooled, which works with numpy cumsums.
"""

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.scoring.pooled import (
    accuracy_at_1,
    micro_ap,
    recall_at_precision,
    similarity_from_distance,
)


def _ranked(preds, cap=None):
    preds = sorted(preds, key=lambda t: (-t[0], t[1]))  # negatives first in ties
    return preds[:cap] if cap else preds


def _naive_uap(preds, n_pos, cap=None):
    tp, total = 0, 0.0
    for i, (_, ok) in enumerate(_ranked(preds, cap), 1):
        if ok:
            tp += 1
            total += tp / i
    return total / n_pos


def _naive_rp(preds, n_pos, p, cap=None):
    kept = _ranked(preds, cap)
    best = (0.0, None)
    for t in sorted({s for s, _ in kept}, reverse=True):
        sel = [ok for s, ok in kept if s >= t]
        prec, rec = sum(sel) / len(sel), sum(sel) / n_pos
        if prec >= p and rec > best[0]:
            best = (rec, t)
    return best


def _pairs(s, c):
    return list(zip(s.tolist(), c.tolist(), strict=True))


def test_hand_computed_with_tie():
    s = np.array([0.9, 0.8, 0.8, 0.5])
    c = np.array([True, True, False, True])
    # pessimistic order: T(0.9), F(0.8), T(0.8), T(0.5) -> (1/1 + 2/3 + 3/4) / 3
    assert micro_ap(s, c, 3) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # an optimistic tie order would give (1 + 1 + 3/4) / 3: must not
    assert micro_ap(s, c, 3) != pytest.approx((1 + 1 + 3 / 4) / 3)
    # precision 1 only above the tie block: threshold 0.9, recall 1/3
    assert recall_at_precision(s, c, 3, 0.9) == (pytest.approx(1 / 3), 0.9)
    # at p = 0.6 every block end qualifies (1, 2/3, 3/4): full recall at 0.5
    assert recall_at_precision(s, c, 3, 0.6) == (pytest.approx(1.0), 0.5)
    # a missed true pair (4 in the truth) adds zero precision
    assert micro_ap(s, c, 4) == pytest.approx((1 + 2 / 3 + 3 / 4) / 4)


def test_negatives_only():
    s = np.array([0.3, 0.2])
    c = np.array([False, False])
    assert micro_ap(s, c, 1) == 0.0
    assert recall_at_precision(s, c, 1) == (0.0, None)
    assert micro_ap(np.array([]), np.array([], dtype=bool), 2) == 0.0


def test_one_query_with_many_predictions_and_the_cap():
    # query A: one true pair at 0.95; query B: 6 wrong predictions at 0.9..0.4
    s = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    c = np.array([True, False, False, False, False, False, False, True])
    assert micro_ap(s, c, 2) == pytest.approx((1 + 2 / 8) / 2)
    # a cap of 7 drops the last (true) prediction: only the first pair counts
    assert micro_ap(s, c, 2, cap=7) == pytest.approx(1 / 2)
    # cap on a tie block keeps its negatives first (pessimistic)
    s2, c2 = np.array([0.5, 0.5, 0.5]), np.array([True, False, False])
    assert micro_ap(s2, c2, 1, cap=2) == 0.0


def test_against_naive_on_random_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 200).astype(float)
    c = rng.random(200) < 0.3
    n_pos = int(c.sum()) + 3
    for cap in (None, 50, 123):
        assert micro_ap(s, c, n_pos, cap) == pytest.approx(_naive_uap(_pairs(s, c), n_pos, cap))
        for p in (0.3, 0.5, 0.9):
            r, t = recall_at_precision(s, c, n_pos, p, cap)
            nr, nt = _naive_rp(_pairs(s, c), n_pos, p, cap)
            assert r == pytest.approx(nr) and t == nt


def test_bad_input_is_one_error():
    with pytest.raises(BenchError, match="no true pair"):
        micro_ap(np.array([1.0]), np.array([True]), 0)
    with pytest.raises(BenchError, match="2 correct predictions but only 1"):
        micro_ap(np.array([1.0, 0.5]), np.array([True, True]), 1)
    with pytest.raises(BenchError, match="NaN"):
        micro_ap(np.array([np.nan]), np.array([True]), 1)


def test_similarity_direction_per_metric():
    # harness distances: smaller is closer for every metric
    d = np.array([1.0, 3.0])
    for metric in ("euclidean", "l2", "hamming", "ip", "angular", "cosine"):
        sim = similarity_from_distance(d, metric)
        assert sim[0] > sim[1], metric
    # ip: the harness distance is -dot, so the similarity is the dot product
    assert similarity_from_distance(np.array([-0.7]), "ip")[0] == pytest.approx(0.7)
    assert similarity_from_distance(np.array([0.1]), "cosine")[0] == pytest.approx(0.9)
    assert similarity_from_distance(np.array([5.0]), "hamming")[0] == -5.0
    assert similarity_from_distance(np.array([np.inf]), "euclidean")[0] == -np.inf


def test_accuracy_at_1_only_positive_queries():
    top1 = np.array([True, False, False, True])
    positive = np.array([True, True, False, False])
    assert accuracy_at_1(top1, positive) == 0.5


def test_pooled_options_are_checked_at_load():
    from pydantic import ValidationError

    from bench.config.sections import RelevanceOptions

    with pytest.raises(ValidationError, match="applies to mode identity only"):
        RelevanceOptions.model_validate({"mode": "labels", "pooled": {"cap": 5}})
    with pytest.raises(ValidationError, match="precisions in"):
        RelevanceOptions.model_validate({"mode": "identity", "pooled": {"at_precision": [1.5]}})
    with pytest.raises(ValidationError, match="predictions"):
        RelevanceOptions.model_validate({"mode": "identity", "pooled": {"predictions": 0}})
    # a bare mode is still recorded as the bare name
    assert RelevanceOptions.model_validate("identity").model_dump() == "identity"
