"""bench.scoring.metrics against hand-computed examples and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from bench.core.errors import BenchError
from bench.scoring.judges import knn_scores
from bench.scoring.metrics import (
    average_precision,
    check_no_duplicates,
    compact_rows,
    dedupe_ranking,
    grouped_mean,
    hit_rate_at_k,
    id_recall,
    pr_curve,
    precision_at_k,
    query_mean,
    recall_at_k,
    tie_aware_recall,
)

# ------------------------------------------------------------------- duplicates / ids


def test_duplicates_rejected_naming_the_row() -> None:
    ids = np.array([[0, 1, 2], [3, 4, 5], [7, 8, 7]])
    with pytest.raises(BenchError, match="query row 2 lists database id 7"):
        check_no_duplicates(ids)


def test_padding_may_repeat_and_clean_rows_pass() -> None:
    check_no_duplicates(np.array([[4, -1, -1], [2, 1, 0]]))
    check_no_duplicates(np.array([[5], [5]]))  # one column: nothing to compare


def test_out_of_range_ids_rejected() -> None:
    with pytest.raises(BenchError, match="query row 1 rank 0 has id 10"):
        check_no_duplicates(np.array([[0, 1], [10, 2]]), n_database=10)
    with pytest.raises(BenchError, match="has id -2"):
        check_no_duplicates(np.array([[0, -2]]), n_database=10)


def test_duplicates_would_fool_recall_so_they_must_be_checked() -> None:
    # Returning the nearest point k times: tie-aware recall alone would say 1.0.
    gt_dist = np.array([[0.1, 0.2, 0.3]])
    cheat = np.array([[0.1, 0.1, 0.1]])
    assert tie_aware_recall(cheat, gt_dist, 3)[0] == 1.0
    with pytest.raises(BenchError):
        check_no_duplicates(np.array([[5, 5, 5]]))


# ----------------------------------------------------------------------------- id recall


def test_id_recall_hand_example() -> None:
    gt = np.array([[1, 2, 3, 9], [4, 5, 6, 9], [7, 8, 0, 9]])
    res = np.array([[3, 2, 1], [4, 9, -1], [-1, -1, -1]])
    np.testing.assert_allclose(id_recall(res, gt, 3), [1.0, 1 / 3, 0.0])
    # only the first k of the ground truth count: 9 is at rank 4
    np.testing.assert_allclose(id_recall(res[:, :2], gt, 2), [0.5, 0.5, 0.0])


def test_id_recall_counts_a_repeated_id_once() -> None:
    # set semantics, even if a caller forgot check_no_duplicates
    gt = np.array([[1, 2, 3], [-1, -1, -1]])
    np.testing.assert_allclose(id_recall(np.array([[1, 1, 2], [0, 1, 2]]), gt, 3), [2 / 3, 0])


def test_id_recall_matches_a_python_loop() -> None:
    rng = np.random.default_rng(3)
    nq, k, n = 200, 10, 60
    gt = np.stack([rng.permutation(n)[:k] for _ in range(nq)])
    res = np.stack([rng.permutation(n)[:k] for _ in range(nq)])
    res[rng.random((nq, k)) < 0.1] = -1
    expected = [len(set(r) & set(g)) / k for r, g in zip(res.tolist(), gt.tolist(), strict=True)]
    np.testing.assert_allclose(id_recall(res, gt, k), expected)


def test_id_recall_shape_errors() -> None:
    with pytest.raises(BenchError, match="fewer than k=3"):
        id_recall(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 5), dtype=np.int64), 3)
    with pytest.raises(BenchError, match="rows"):
        id_recall(np.zeros((2, 3), dtype=np.int64), np.zeros((3, 3), dtype=np.int64), 3)


# ---------------------------------------------------------------------- tie-aware recall


def test_tie_at_kth_distance_either_item_counts() -> None:
    # items 2 and 3 are both at distance 3.0; the ground truth listed item 2 third
    gt_ids = np.array([[0, 1, 2, 3, 4]])
    gt_dist = np.array([[1.0, 2.0, 3.0, 3.0, 4.0]])
    for third in (2, 3):
        dist = gt_dist[:, [0, 1, third]]
        assert tie_aware_recall(dist, gt_dist, 3)[0] == 1.0
    # id recall is strict: the other tied item is a miss there
    assert id_recall(np.array([[0, 1, 3]]), gt_ids, 3)[0] == pytest.approx(2 / 3)
    # the next distinct distance does not count
    assert tie_aware_recall(np.array([[1.0, 2.0, 4.0]]), gt_dist, 3)[0] == pytest.approx(2 / 3)


def test_float32_rounding_counts_but_a_real_gap_does_not() -> None:
    gt_dist = np.array([[10.0, 20.0]])
    assert tie_aware_recall(np.array([[10.0, 20.0 * (1 + 5e-7)]]), gt_dist, 2)[0] == 1.0
    assert tie_aware_recall(np.array([[10.0, 20.0 * (1 + 5e-6)]]), gt_dist, 2)[0] == 0.5


def _angular_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors whose 1 - cos to the query are set by hand, like SIFT/GloVe angular sets.

    Top 10 at 0.0400..0.04045, then 15 more within 1e-3 of the 10th, then far ones.
    Returns (database float32, query float32, exact float64 distances).
    """
    rng = np.random.default_rng(seed)
    dim = 32
    q = rng.normal(size=dim)
    q /= np.linalg.norm(q)
    target = np.concatenate([
        0.0400 + 5e-5 * np.arange(10),
        0.04045 + 6e-5 * np.arange(1, 16),
        np.linspace(0.05, 0.5, 75),
    ])
    db = np.empty((target.size, dim))
    for i, d in enumerate(target):
        u = rng.normal(size=dim)
        u -= (u @ q) * q
        u /= np.linalg.norm(u)
        c = 1.0 - d
        db[i] = c * q + math.sqrt(1 - c * c) * u
    db32 = db.astype(np.float32)
    db32 /= np.linalg.norm(db32, axis=1, keepdims=True)
    q32 = q.astype(np.float32)
    q32 /= np.linalg.norm(q32)
    dist = 1.0 - db32.astype(np.float64) @ q32.astype(np.float64)
    return db32, q32, dist


def test_absolute_epsilon_pitfall_on_angular_data() -> None:
    _, _, dist = _angular_case()
    order = np.argsort(dist, kind="stable")
    gt_ids = order[None, :100]
    gt_dist = dist[gt_ids]
    k = 10
    kth = gt_dist[0, k - 1]
    assert 0.039 < kth < 0.041
    # 7 true neighbours plus 3 of the 15 near-misses that lie within kth + 1e-3
    res_ids = np.concatenate([order[:7], order[10:13]])[None, :]
    res_dist = dist[res_ids]
    # the pitfall exists in this data: ann-benchmarks' absolute epsilon counts all 10
    assert (res_dist <= kth + 1e-3).mean() == 1.0
    assert int((gt_dist[0] <= kth + 1e-3).sum()) == 25
    assert tie_aware_recall(res_dist, gt_dist, k)[0] == pytest.approx(0.7)
    assert id_recall(res_ids, gt_ids, k)[0] == pytest.approx(0.7)
    # and the exact answer scores 1.0 both ways
    assert tie_aware_recall(gt_dist[:, :k], gt_dist, k)[0] == 1.0
    assert id_recall(gt_ids[:, :k], gt_ids, k)[0] == 1.0


def test_negative_inner_product_distances() -> None:
    # distances are -dot: kth = -9, tolerance 1e-6 * |kth| = 9e-6 above it
    gt_dist = np.array([[-10.0, -9.0, -8.0]])
    assert tie_aware_recall(np.array([[-10.0, -9.0]]), gt_dist, 2)[0] == 1.0
    assert tie_aware_recall(np.array([[-10.0, -9.0 + 4e-6]]), gt_dist, 2)[0] == 1.0
    assert tie_aware_recall(np.array([[-10.0, -9.0 + 2e-5]]), gt_dist, 2)[0] == 0.5
    assert tie_aware_recall(np.array([[-10.0, -8.0]]), gt_dist, 2)[0] == 0.5


def test_kth_zero_counts_only_zero_up_to_rounding() -> None:
    # query 0 has two exact duplicates in the database; query 1 gives the data's scale
    gt_dist = np.array([[0.0, 0.0, 0.5], [0.2, 0.3, 0.4]])
    rounding = np.array([[0.0, 1e-13], [0.2, 0.3]])
    real_gap = np.array([[0.0, 1e-6], [0.2, 0.3]])
    np.testing.assert_allclose(tie_aware_recall(rounding, gt_dist, 2), [1.0, 1.0])
    np.testing.assert_allclose(tie_aware_recall(real_gap, gt_dist, 2), [0.5, 1.0])
    np.testing.assert_allclose(tie_aware_recall(rounding, gt_dist, 2, atol=0.0), [0.5, 1.0])


def test_padding_nan_is_a_miss() -> None:
    gt_dist = np.array([[0.1, 0.2], [0.1, 0.2]])
    res = np.array([[0.1, np.nan], [np.nan, np.nan]])
    np.testing.assert_allclose(tie_aware_recall(res, gt_dist, 2), [0.5, 0.0])


def test_tie_aware_recall_input_errors() -> None:
    with pytest.raises(BenchError, match="query row 1 has no finite distance at rank 2"):
        tie_aware_recall(np.zeros((2, 2)), np.array([[0.1, 0.2], [0.1, np.nan]]), 2)
    with pytest.raises(BenchError, match="k must be >= 1"):
        tie_aware_recall(np.zeros((1, 2)), np.zeros((1, 2)), 0)
    with pytest.raises(BenchError, match="fewer than k=3"):
        tie_aware_recall(np.zeros((1, 3)), np.zeros((1, 2)), 3)


def test_knn_scores_show_the_spread() -> None:
    """The record's recall fields come from the production scorer (judges.knn_scores)."""
    # 100 queries on a 1-d line: the true neighbour of query i is database row i; a run
    # that returns a wrong id for a tenth of the queries is 0.9 on average, 0 at p5
    database = np.arange(200, dtype=np.float32)[:, None] * 10
    queries = database[:100] + 1
    gt_ids = np.arange(100)[:, None]
    gt_dist = np.ones((100, 1))
    ids = gt_ids.copy()
    ids[:10, 0] = 150
    out = knn_scores(ids, 1, database=database, queries=queries, gt_ids=gt_ids,
                     gt_dist=gt_dist, metric="euclidean")
    assert out["recall"] == pytest.approx(0.9) and out["id_recall"] == pytest.approx(0.9)
    assert out["recall_p5"] == 0.0 and out["recall_min"] == 0.0
    with pytest.raises(BenchError, match="twice|duplicate"):
        knn_scores(np.zeros((100, 2), dtype=np.int64), 2, database=database, queries=queries,
                   gt_ids=np.zeros((100, 2), dtype=np.int64), gt_dist=np.ones((100, 2)),
                   metric="euclidean")


# --------------------------------------------------------------------- relevance metrics

MASK = np.array([
    [1, 0, 1, 0, 0],  # 3 relevant exist, 2 found at ranks 1 and 3
    [0, 0, 0, 0, 1],  # 1 relevant, found at rank 5
    [0, 0, 0, 0, 0],  # no relevant item exists
    [0, 0, 0, 0, 0],  # 2 relevant exist, none found
], dtype=bool)
N_REL = np.array([3, 1, 0, 2])


def test_hit_rate_recall_precision_by_hand() -> None:
    np.testing.assert_allclose(hit_rate_at_k(MASK, N_REL, 1), [1, 0, np.nan, 0])
    np.testing.assert_allclose(hit_rate_at_k(MASK, N_REL, 5), [1, 1, np.nan, 0])
    np.testing.assert_allclose(recall_at_k(MASK, N_REL, 3), [2 / 3, 0, np.nan, 0])
    np.testing.assert_allclose(recall_at_k(MASK, N_REL, 5), [2 / 3, 1, np.nan, 0])
    np.testing.assert_allclose(precision_at_k(MASK, N_REL, 3), [2 / 3, 0, np.nan, 0])
    np.testing.assert_allclose(precision_at_k(MASK, N_REL, 5), [2 / 5, 1 / 5, np.nan, 0])
    # a cut-off beyond the ranking pads with non-relevant items (trec_eval P_k)
    np.testing.assert_allclose(precision_at_k(MASK, N_REL, 10), [2 / 10, 1 / 10, np.nan, 0])


def test_queries_without_relevant_items_are_left_out_and_counted() -> None:
    mean, n_out = query_mean(hit_rate_at_k(MASK, N_REL, 1))
    assert mean == pytest.approx(1 / 3)  # not 1/4 (counted as a miss), not 2/4 (as a hit)
    assert n_out == 1
    assert query_mean(np.array([np.nan, np.nan])) == (pytest.approx(math.nan, nan_ok=True), 2)


def test_average_precision_by_hand() -> None:
    # row 0: precision 1/1 at rank 1 and 2/3 at rank 3; 3 relevant exist
    ap = average_precision(MASK, N_REL)
    np.testing.assert_allclose(ap, [(1 + 2 / 3) / 3, (1 / 5) / 1, np.nan, 0.0])
    # cut-off 2: trec_eval map_cut divides by all relevant, "min" by min(n_relevant, 2)
    np.testing.assert_allclose(average_precision(MASK, N_REL, cutoff=2), [1 / 3, 0, np.nan, 0])
    np.testing.assert_allclose(
        average_precision(MASK, N_REL, cutoff=2, denominator="min"), [1 / 2, 0, np.nan, 0])
    m, n_out = query_mean(average_precision(MASK, N_REL))
    assert m == pytest.approx(((1 + 2 / 3) / 3 + 0.2 + 0.0) / 3)
    assert n_out == 1
    with pytest.raises(BenchError, match="denominator"):
        average_precision(MASK, N_REL, denominator="max")  # type: ignore[arg-type]


def test_average_precision_over_full_ranking_matches_sklearn() -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        relevant = rng.random(40) < 0.2
        relevant[rng.integers(40)] = True
        scores = -np.arange(40, dtype=np.float64)  # rank order, no ties
        expected = average_precision_score(relevant, scores)
        got = average_precision(relevant[None, :], np.array([relevant.sum()]))[0]
        assert got == pytest.approx(expected)


def test_pr_curve_by_hand() -> None:
    mask = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=bool)
    n_rel = np.array([2, 1, 0])
    curve = pr_curve(mask, n_rel)
    # q0 precision 1, 1/2, 2/3; q1 0, 1/2, 1/3 -> mean 1/2 at every rank
    np.testing.assert_allclose(curve.precision, [0.5, 0.5, 0.5])
    # q0 recall 1/2, 1/2, 1; q1 0, 1, 1
    np.testing.assert_allclose(curve.recall, [0.25, 0.75, 1.0])
    assert (curve.n_queries, curve.n_excluded) == (2, 1)
    empty = pr_curve(np.zeros((1, 2), dtype=bool), np.array([0]))
    assert empty.n_queries == 0 and np.isnan(empty.precision).all()


def test_more_found_than_exist_is_rejected() -> None:
    with pytest.raises(BenchError, match="query row 0: the ranking holds 2 relevant"):
        recall_at_k(np.array([[True, True]]), np.array([1]), 2)
    with pytest.raises(BenchError, match="bool"):
        hit_rate_at_k(np.array([[1, 0]]), np.array([1]), 1)
    with pytest.raises(BenchError, match="n_relevant"):
        hit_rate_at_k(np.array([[True]]), np.array([1, 1]), 1)


# ----------------------------------------------------------------------- ranking helpers


def test_compact_rows_keeps_order_and_pads() -> None:
    values = np.array([[10, 11, 12, 13], [20, 21, 22, 23]])
    keep = np.array([[False, True, False, True], [True, True, True, True]])
    np.testing.assert_array_equal(compact_rows(values, keep),
                                  [[11, 13, -1, -1], [20, 21, 22, 23]])


def test_dedupe_ranking_keeps_first_occurrence() -> None:
    keys = np.array([[5, 3, 5, -1, 3, 7], [1, 1, 1, 1, 1, 1]])
    pos = dedupe_ranking(keys)
    np.testing.assert_array_equal(pos, [[0, 1, 5, -1, -1, -1], [0, -1, -1, -1, -1, -1]])


def test_dedupe_ranking_matches_a_python_loop() -> None:
    rng = np.random.default_rng(11)
    keys = rng.integers(-1, 8, size=(50, 12))
    pos = dedupe_ranking(keys)
    for row, prow in zip(keys.tolist(), pos.tolist(), strict=True):
        seen: set[int] = set()
        expected = []
        for r, key in enumerate(row):
            if key >= 0 and key not in seen:
                seen.add(key)
                expected.append(r)
        assert prow == expected + [-1] * (len(row) - len(expected))


def test_grouped_mean_breakdown() -> None:
    values = np.array([1.0, 0.0, 1.0, np.nan, 0.5, np.nan])
    groups = ["jpeg", "crop", "jpeg", "crop", "blur", "rotate"]
    out = grouped_mean(values, groups)
    assert list(out) == ["blur", "crop", "jpeg", "rotate"]
    assert out["jpeg"] == 1.0 and out["crop"] == 0.0 and out["blur"] == 0.5
    assert math.isnan(out["rotate"])  # only undefined values: stays visible as NaN
    with pytest.raises(BenchError, match="2 group labels for 6 values"):
        grouped_mean(values, ["a", "b"])
