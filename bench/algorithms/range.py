"""Range (threshold) search: every database item within ``radius`` of a query (issue #17).

A copy detector answers "is there a copy closer than t?", not "give me the 10
nearest": the query parameter ``radius`` (harness distance units: L2, 1 - cos,
-dot, bits) switches a backend that supports it (Faiss indexes with ``range_search``:
Flat, IVF, HNSW, PQ, ..., not NSG; faiss-binary BFlat / BIVF; bruteforce) from k-NN to
range search. The run still has a ``k``: the
at most k closest in-radius items are kept per query, sorted ascending, padded with
-1, so a range run is recorded, timed and scored like a k-NN run, and the pooled
copy-detection metrics see exactly the in-radius predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.core.errors import BenchError


def check_radius(value: Any, backend: str) -> float:
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise BenchError(f"{backend}: query parameter radius must be a number, got "
                         f"{value!r}") from None
    if not np.isfinite(r):
        raise BenchError(f"{backend}: query parameter radius must be finite, got {value!r}")
    return r


def range_to_knn(lims: np.ndarray, dist: np.ndarray, ids: np.ndarray, k: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Faiss ``range_search`` output (lims, distances, ids; distances ascending = better)
    as (nq, k) arrays: each query's k closest in-radius results, padded with inf / -1."""
    lims = np.asarray(lims, dtype=np.int64)
    nq = len(lims) - 1
    counts = np.diff(lims)
    query = np.repeat(np.arange(nq), counts)
    order = np.lexsort((np.asarray(ids), np.asarray(dist, dtype=np.float64), query))
    rank = np.arange(order.size) - np.repeat(lims[:-1], counts)
    keep = rank < k
    out_d = np.full((nq, k), np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    sel = order[keep]
    out_d[query[keep], rank[keep]] = np.asarray(dist)[sel]
    out_i[query[keep], rank[keep]] = np.asarray(ids)[sel]
    return out_d, out_i


def within_radius(dist: np.ndarray, ids: np.ndarray, radius: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """k-NN results cut at the radius (distance <= radius kept): the bruteforce way."""
    dist, ids = dist.copy(), ids.copy()
    out = ~(dist <= radius)
    dist[out] = np.inf
    ids[out] = -1
    return dist, ids
