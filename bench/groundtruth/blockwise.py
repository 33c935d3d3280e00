"""Exact scores for the metrics that have no matrix-product form: l1, jensen-shannon.

The BLAS path in exact.py ranks euclidean / angular / ip by one float32 product per
block. L1 and Jensen-Shannon need every (query, row, dimension) term, so they are
scored here, block by block and in float64: scipy's ``cdist`` (C loops) for L1, and
numpy on bounded (queries, rows, dim) temporaries for Jensen-Shannon. The selection
and float64 re-scoring around them are the same as for the product metrics.

Jensen-Shannon follows Faiss' METRIC_JensenShannon: 0.5 * sum_i [p_i log(2 p_i /
(p_i + q_i)) + q_i log(2 q_i / (p_i + q_i))], natural logs, with 0 log 0 = 0 (Faiss
itself returns NaN there). For candidate scoring it is expanded as 0.5 * (h(p) +
h(q) - sum (p + q) log((p + q) / 2)) with h(p) = sum p log p computed once per row:
one logarithm per term instead of two; the cancellation this risks near zero is far
below the float32 resolution the selection works at, and the final distances come
from the direct form (:func:`pair_distances`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import xlogy

#: float64 elements of one (queries, rows, dim) temporary (16 MiB)
TEMP_ELEMENTS = 1 << 21


def block_scores(queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances (len(queries), len(rows)) of an l1 or jensen-shannon block."""
    q = np.asarray(queries, dtype=np.float64)
    x = np.asarray(rows, dtype=np.float64)
    if metric == "l1":
        return cdist(q, x, "cityblock")
    if metric != "jensen-shannon":
        raise ValueError(f"block_scores: no block-wise form for metric {metric!r}")
    hq = xlogy(q, q).sum(axis=1)
    hx = xlogy(x, x).sum(axis=1)
    out = np.add.outer(hq, hx)
    step = max(1, TEMP_ELEMENTS // max(1, x.size))
    for b0 in range(0, len(q), step):
        both = q[b0 : b0 + step, None, :] + x[None, :, :]
        out[b0 : b0 + step] -= xlogy(both, both * 0.5).sum(axis=2)
    out *= 0.5
    return np.maximum(out, 0.0, out=out)


def pair_distances(neighbours: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances of gathered rows (b, k, d) to their queries (b, d)."""
    x = np.asarray(neighbours, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)[:, None, :]
    if metric == "l1":
        return np.abs(x - q).sum(axis=2)
    both = x + q
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = xlogy(x, 2.0 * x / both) + xlogy(q, 2.0 * q / both)
    # both == 0 only where x == q == 0, whose terms are 0 log 0 = 0
    terms = np.where(both > 0, terms, 0.0)
    return np.maximum(0.5 * terms.sum(axis=2), 0.0)
