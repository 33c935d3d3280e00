"""Scores of one ranking: k-NN recall two ways, and relevance metrics.

Pure numpy, vectorised over queries: no function loops over query rows, so a
10k x 100 result is scored in milliseconds.

Two families live here:

- k-NN recall against exact neighbours (``id_recall``, ``tie_aware_recall``). A
  result with duplicate ids is rejected by ``check_no_duplicates`` before either
  is computed: returning the nearest point k times would otherwise score 100 %.
- Relevance metrics (hit rate, true recall, precision, AP, mAP, PR curve) on a
  boolean ``mask`` (nq, K): ``mask[q, r]`` says whether the item at rank r of
  query q is relevant, plus ``n_relevant`` (nq,): how many relevant items the
  database holds for q. ``bench.scoring.relevance.Relevance`` builds both from metadata.

Queries with no relevant item cannot be answered right or wrong, so every
per-query relevance metric is NaN for them and the means (``query_mean``,
the judges in judges.py) leave them out and report how many were left out. Counting
them as misses would silently deflate the means (as zeros) and counting them as
hits would inflate them; leaving them out is what trec_eval does for topics
without relevance judgements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.core.errors import BenchError

DEFAULT_RTOL = 1e-6
# Floor of the tie tolerance, relative to the data's distance scale (see tie_aware_recall).
ROUNDING_FLOOR = 1e-10


# --------------------------------------------------------------------------- k-NN recall


def _as_ids(ids: np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise BenchError(f"{what}: expected a 2-d integer array (queries x k), got "
                         f"shape {ids.shape} dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def _check_k(k: int, columns: int, what: str) -> None:
    if k < 1:
        raise BenchError(f"k must be >= 1, got {k}")
    if columns < k:
        raise BenchError(f"{what} has {columns} columns, fewer than k={k}")


def check_no_duplicates(ids: np.ndarray, n_database: int | None = None) -> None:
    """Reject a result that lists one database id twice in a query row.

    -1 is padding and may repeat. With ``n_database`` ids must also lie in
    [-1, n_database), since an out-of-range id would otherwise index garbage.
    """
    ids = _as_ids(ids, "result ids")
    if n_database is not None:
        bad = (ids < -1) | (ids >= n_database)
        if bad.any():
            q, r = np.argwhere(bad)[0]
            raise BenchError(f"result ids: query row {q} rank {r} has id {ids[q, r]}, "
                             f"outside [-1, {n_database})")
    if ids.shape[1] < 2:
        return
    s = np.sort(ids, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    rows = np.flatnonzero(dup.any(axis=1))
    if rows.size:
        q = int(rows[0])
        value = int(s[q, 1:][dup[q]][0])
        raise BenchError(f"result ids: query row {q} lists database id {value} more than once "
                         f"({rows.size} rows with duplicates); a result with duplicates is "
                         "rejected, not scored")


def id_recall(result_ids: np.ndarray, gt_ids: np.ndarray, k: int) -> np.ndarray:
    """Per-query |set(result[:k]) & set(gt[:k])| / k; -1 padding is a miss.

    Strict about ties: a returned item at exactly the k-th distance that the
    ground truth happened to order at k+1 is a miss here (tie_aware_recall counts it).
    """
    res = _as_ids(result_ids, "result ids")
    gt = _as_ids(gt_ids, "ground-truth ids")
    _check_k(k, res.shape[1], "result ids")
    _check_k(k, gt.shape[1], "ground-truth ids")
    if res.shape[0] != gt.shape[0]:
        raise BenchError(f"result ids have {res.shape[0]} rows but the ground truth has "
                         f"{gt.shape[0]}")
    res, gt = np.sort(res[:, :k], axis=1), np.sort(gt[:, :k], axis=1)
    nq = res.shape[0]
    # (row, id) as one integer, row-major: rows sorted by id make the flattened
    # keys globally sorted, so one searchsorted answers every row at once.
    base = int(max(res.max(initial=0), gt.max(initial=0))) + 1
    rows = np.arange(nq, dtype=np.int64)[:, None]
    first = np.ones(res.shape, dtype=bool)
    first[:, 1:] = res[:, 1:] != res[:, :-1]  # set semantics within a row
    res_keys = (rows * base + res)[first & (res >= 0)]
    gt_keys = (rows * base + gt)[gt >= 0]
    pos = np.minimum(np.searchsorted(gt_keys, res_keys), max(gt_keys.size - 1, 0))
    hit = gt_keys[pos] == res_keys if gt_keys.size else np.zeros(res_keys.size, dtype=bool)
    return np.bincount(res_keys[hit] // base, minlength=nq).astype(np.float64) / k


def tie_aware_recall(
    result_dist: np.ndarray, gt_dist: np.ndarray, k: int, rtol: float = DEFAULT_RTOL,
    atol: float | None = None,
) -> np.ndarray:
    """Per-query share of the first k results no farther than the true k-th neighbour.

    ``result_dist``: exact float64 distances of the returned ids, recomputed by
    the harness (NaN or inf for -1 padding, which then counts as a miss);
    ``gt_dist``: exact float64 distances of the true neighbours, ascending.
    Duplicates must have been rejected (``check_no_duplicates``) first.

    A result counts when ``d <= kth + max(rtol * |kth|, atol)``, kth = gt_dist[:, k-1].

    Why relative: distances of different data sets differ by orders of magnitude
    and so do their gaps. ann-benchmarks' absolute ``kth + 1e-3`` counts about 15 of
    the top 100 as ties on angular data with 1 - cos near 0.04 and turns a true
    overlap of 0.70 into 0.92. 1e-6 sits above float32 resolution (6e-8), the
    precision in which backends compute, so true ties and float32 rounding both
    count, but real neighbours further away do not. |kth| because inner-product
    distances (-dot) are negative.

    Why the floor ``atol``: when kth is 0 (the query has k exact duplicates in the
    database) or near 0 (inner product crossing zero), ``rtol * |kth|`` collapses to
    nothing, and then only float64 rounding separates a duplicate found by the
    backend from the same duplicate in the ground truth: recomputed dot products
    of d terms differ by up to about d * 1.1e-16 of the operands' scale. The
    default floor is ``1e-10`` times the largest finite |distance| anywhere in
    ``gt_dist`` (all queries, all columns given: the data's own distance scale):
    far above that rounding, far below any distance gap a float32 backend can
    resolve. So with kth == 0, only distances that are 0 up to rounding count.
    If every ground-truth distance is 0 there is no scale and the floor is 0.
    Pass ``atol`` explicitly to override (``atol=0``: no floor at all).
    """
    res = np.asarray(result_dist, dtype=np.float64)
    gt = np.asarray(gt_dist, dtype=np.float64)
    if res.ndim != 2 or gt.ndim != 2:
        raise BenchError(f"distances must be 2-d (queries x k); got {res.shape} and {gt.shape}")
    _check_k(k, res.shape[1], "result distances")
    _check_k(k, gt.shape[1], "ground-truth distances")
    if res.shape[0] != gt.shape[0]:
        raise BenchError(f"result distances have {res.shape[0]} rows but the ground truth has "
                         f"{gt.shape[0]}")
    if rtol < 0 or (atol is not None and atol < 0):
        raise BenchError(f"tolerances must be >= 0, got rtol={rtol} atol={atol}")
    kth = gt[:, k - 1]
    bad = ~np.isfinite(kth)
    if bad.any():
        q = int(np.flatnonzero(bad)[0])
        raise BenchError(f"ground truth: query row {q} has no finite distance at rank {k} "
                         "(fewer than k database items?)")
    if atol is None:
        scale = np.abs(gt)
        finite = scale[np.isfinite(scale)]
        atol = ROUNDING_FLOOR * float(finite.max()) if finite.size else 0.0
    threshold = kth + np.maximum(rtol * np.abs(kth), atol)
    with np.errstate(invalid="ignore"):
        hit = res[:, :k] <= threshold[:, None]  # NaN compares False: padding is a miss
    return hit.sum(axis=1).astype(np.float64) / k


# --------------------------------------------------------------------- relevance metrics


def _check_mask(mask: np.ndarray, n_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != bool:
        raise BenchError(f"relevance mask: expected a 2-d bool array, got shape {m.shape} "
                         f"dtype {m.dtype}")
    n = np.asarray(n_relevant)
    if n.shape != (m.shape[0],):
        raise BenchError(f"n_relevant has shape {n.shape}; expected ({m.shape[0]},)")
    found = m.sum(axis=1)
    over = found > n
    if over.any():
        q = int(np.flatnonzero(over)[0])
        raise BenchError(f"query row {q}: the ranking holds {found[q]} relevant items but only "
                         f"{n[q]} exist (duplicates in the ranking?)")
    return m, n.astype(np.float64)


def _cut(mask: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise BenchError(f"k must be >= 1, got {k}")
    # A ranking shorter than k is padded with non-relevant items (trec_eval's rule).
    return mask[:, :k]


def _undefined(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return np.where(n_relevant > 0, values, np.nan)


def hit_rate_at_k(mask: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """1.0 where at least one relevant item is in the top k, else 0.0; NaN without any.

    This is the "recall@K" that TIRG / ComposeAE and the copy-detection study report.
    """
    m, n = _check_mask(mask, n_relevant)
    return _undefined(_cut(m, k).any(axis=1).astype(np.float64), n)


def recall_at_k(mask: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant items found in the top k / relevant items that exist; NaN without any.

    Capped by k / n_relevant when a query has more than k relevant items.
    """
    m, n = _check_mask(mask, n_relevant)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _undefined(_cut(m, k).sum(axis=1) / n, n)


def precision_at_k(mask: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant items in the top k / k (trec_eval P_k: padding counts as not relevant).

    NaN for queries without relevant items, consistently with the other metrics.
    """
    m, n = _check_mask(mask, n_relevant)
    return _undefined(_cut(m, k).sum(axis=1) / float(k), n)


def average_precision(
    mask: np.ndarray, n_relevant: np.ndarray, cutoff: int | None = None,
    denominator: Literal["n_relevant", "min"] = "n_relevant",
) -> np.ndarray:
    """Per-query AP: sum of precision@r over relevant ranks r <= cutoff, / denominator.

    Default ``denominator="n_relevant"`` is trec_eval's ``map`` / ``map_cut``
    convention (and sklearn's average_precision_score on a full ranking):
    relevant items never retrieved within the cutoff contribute precision 0, so
    a search that misses them is penalised. ``"min"`` divides by min(n_relevant,
    cutoff) instead (the Kaggle / ml_metrics ``apk`` convention), which lets a
    perfect top-cutoff score 1.0 even when more relevant items exist.
    ``cutoff=None`` uses the whole ranking given.
    """
    m, n = _check_mask(mask, n_relevant)
    if cutoff is not None:
        m = _cut(m, cutoff)
    ranks = np.arange(1, m.shape[1] + 1, dtype=np.float64)
    precision = np.cumsum(m, axis=1) / ranks
    total = np.where(m, precision, 0.0).sum(axis=1)
    if denominator == "n_relevant":
        denom = n
    elif denominator == "min":
        denom = np.minimum(n, cutoff if cutoff is not None else m.shape[1])
    else:
        raise BenchError(f"denominator must be 'n_relevant' or 'min', got {denominator!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return _undefined(total / denom, n)


def query_mean(values: np.ndarray) -> tuple[float, int]:
    """(mean over queries where the metric is defined, number of queries left out)."""
    v = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(v)
    n_out = int(v.size - defined.sum())
    return (float(v[defined].mean()) if defined.any() else float("nan")), n_out


@dataclass(frozen=True)
class PRCurve:
    """Mean precision and recall at every rank cut-off 1..K (index 0 is rank 1)."""

    precision: np.ndarray
    recall: np.ndarray
    n_queries: int  # queries averaged
    n_excluded: int  # queries without relevant items, left out


def pr_curve(mask: np.ndarray, n_relevant: np.ndarray) -> PRCurve:
    """Precision@r and recall@r for r = 1..K, each averaged over queries.

    The COCO retrieval convention: average at equal rank, not interpolated at
    equal recall, so the curve's points are (mean recall@r, mean precision@r).
    """
    m, n = _check_mask(mask, n_relevant)
    keep = n > 0
    if not keep.any():
        empty = np.full(m.shape[1], np.nan)
        return PRCurve(empty, empty.copy(), 0, int(m.shape[0]))
    hits = np.cumsum(m[keep], axis=1, dtype=np.float64)
    ranks = np.arange(1, m.shape[1] + 1, dtype=np.float64)
    return PRCurve(
        precision=(hits / ranks).mean(axis=0),
        recall=(hits / n[keep][:, None]).mean(axis=0),
        n_queries=int(keep.sum()),
        n_excluded=int((~keep).sum()),
    )


# ----------------------------------------------------------------------- ranking helpers


def compact_rows(values: np.ndarray, keep: np.ndarray, fill: int = -1) -> np.ndarray:
    """Drop the entries where ``keep`` is False, shift the rest left, pad with ``fill``."""
    values = np.asarray(values)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != values.shape or values.ndim != 2:
        raise BenchError(f"compact_rows: values {values.shape} and keep {keep.shape} must be "
                         "the same 2-d shape")
    order = np.argsort(~keep, axis=1, kind="stable")  # kept first, original order
    out = np.take_along_axis(values, order, axis=1).copy()
    out[np.arange(values.shape[1])[None, :] >= keep.sum(axis=1)[:, None]] = fill
    return out


def dedupe_ranking(keys_per_rank: np.ndarray) -> np.ndarray:
    """Column positions of each key's first occurrence per row, compacted, -1 padded.

    ``keys_per_rank[q, r]`` is the key (identity / caption code) of the item at
    rank r; negative keys are padding and dropped. Use the positions with
    ``np.take_along_axis`` on the ids (mind the -1) before cutting at k, so that
    k distinct keys are judged, not k copies of one.
    """
    keys = _as_ids(keys_per_rank, "ranking keys")
    nq, width = keys.shape
    order = np.argsort(keys, axis=1, kind="stable")  # equal keys keep rank order
    sk = np.take_along_axis(keys, order, axis=1)
    first_sorted = np.ones_like(sk, dtype=bool)
    first_sorted[:, 1:] = sk[:, 1:] != sk[:, :-1]
    first = np.zeros_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    first &= keys >= 0
    positions = np.broadcast_to(np.arange(width, dtype=np.int64), (nq, width))
    return compact_rows(positions, first)


def grouped_mean(values: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Mean of per-query values per group (attack type, category), sorted by group.

    NaN values (queries without relevant items) are left out; a group with no
    defined value maps to NaN rather than disappearing, so it stays visible.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(groups) != v.size:
        raise BenchError(f"grouped_mean: {len(groups)} group labels for {v.size} values")
    names, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    defined = ~np.isnan(v)
    sums = np.bincount(inverse[defined], weights=v[defined], minlength=names.size)
    counts = np.bincount(inverse[defined], minlength=names.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return {str(name): float(mean) for name, mean in zip(names, means, strict=True)}
