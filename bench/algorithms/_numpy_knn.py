"""Candidate re-ranking and small dense top-k in plain numpy, shared by our own backends.

Exact k-NN over a database is bench.groundtruth.exact.exact_knn (``bruteforce``
is that function). What stays here works on small candidate sets inside an index:
``lsh`` and ``cluster-search`` gather candidate (query, id) pairs in bulk and hand
them to :func:`rerank`, so the per-candidate work is a handful of array operations
instead of a Python loop; :func:`exact_knn` here ranks a small dense matrix
(centroids to probe, an LSH short list), where the ground truth's blocking and
float64 re-scoring would cost more than the search.

Distances follow the convention of the other backends: euclidean = L2 distance,
angular = 1 - cosine (data arrive normalised), ip = -inner product, hamming =
number of differing bits, l1 and jensen-shannon as in bench.groundtruth.blockwise
(whose float64 scoring they share: neither has a product form). Ties are broken by
the lower id, so results are deterministic.
"""

from __future__ import annotations

import numpy as np

from bench.core.distances import BLOCKWISE_METRICS
from bench.groundtruth import blockwise

#: upper bound on the elements of one temporary distance block (64 MiB of float32)
BLOCK_ELEMENTS = 1 << 24
#: elements of the gathered rows per re-ranking chunk: small enough to stay in cache and to
#: reuse the allocator's memory (fresh 64 MiB gathers spend most of their time in page faults)
PAIR_CHUNK_ELEMENTS = 1 << 18
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def sq_norms(data: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", data, data, dtype=np.float32)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _POPCOUNT[x]


def _hamming_block(codes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(m, n) Hamming distances of packed uint8 codes."""
    out = np.zeros((len(queries), len(codes)), dtype=np.int32)
    for byte in range(codes.shape[1]):  # loop over bytes (8 for 64-bit codes), not items
        out += _popcount(queries[:, byte, None] ^ codes[None, :, byte])
    return out


def distance_block(
    data: np.ndarray, norms: np.ndarray | None, queries: np.ndarray, metric: str
) -> np.ndarray:
    """Distances of every query to every database row, shape (m, n)."""
    if metric == "hamming":
        return _hamming_block(data, queries).astype(np.float32)
    if metric in BLOCKWISE_METRICS:
        return blockwise.block_scores(queries, data, metric).astype(np.float32)
    dots = queries @ data.T
    if metric == "euclidean":
        assert norms is not None
        d2 = sq_norms(queries)[:, None] + norms[None, :] - 2 * dots
        return np.sqrt(np.maximum(d2, 0, out=d2), out=d2)
    if metric == "angular":
        return 1 - dots
    return -dots


def topk_rows(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row k smallest of a dense (m, n) matrix, sorted, ties by lower id, padded."""
    m, n = dist.shape
    kk = min(k, n)
    if kk < n:
        part = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(n), (m, n))
    part_d = np.take_along_axis(dist, part, axis=1)
    order = np.lexsort((part, part_d), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    d = np.take_along_axis(part_d, order, axis=1).astype(np.float32)
    out_d = np.full((m, k), np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.int64)
    out_d[:, :kk] = d
    out_i[:, :kk] = ids
    return out_d, out_i


def exact_knn(
    data: np.ndarray, norms: np.ndarray | None, queries: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Blocked exact search; blocks of queries keep the distance matrix bounded."""
    m, n = len(queries), len(data)
    out_d = np.full((m, k), np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.int64)
    if n == 0 or m == 0:
        return out_d, out_i
    # block-wise metrics hold a float64 block and its float32 copy: a quarter as many rows
    budget = BLOCK_ELEMENTS // (4 if metric in BLOCKWISE_METRICS else 1)
    step = max(1, budget // max(n, 1))
    for start in range(0, m, step):
        block = distance_block(data, norms, queries[start : start + step], metric)
        out_d[start : start + step], out_i[start : start + step] = topk_rows(block, k)
    return out_d, out_i


def gather_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every (s, c), without a Python loop."""
    counts = counts.astype(np.int64, copy=False)
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    out_start = np.cumsum(counts) - counts
    shift = np.repeat(starts.astype(np.int64) - out_start, counts)
    return np.arange(total, dtype=np.int64) + shift


def sorted_unique(keys: np.ndarray, universe: int) -> np.ndarray:
    """Sorted distinct values of non-negative ``keys`` < ``universe``.

    A bitmap when the universe is small relative to the keys, else sort + mask:
    both are many times faster than ``np.unique`` on millions of int64 keys.
    """
    if universe <= max(1 << 24, 16 * len(keys)):
        seen = np.zeros(universe, dtype=bool)
        seen[keys] = True
        return np.flatnonzero(seen)
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def pair_distances(
    data: np.ndarray,
    norms: np.ndarray | None,
    queries: np.ndarray,
    q_idx: np.ndarray,
    ids: np.ndarray,
    metric: str,
) -> np.ndarray:
    """Distance of each (query row, database row) pair, in chunks of bounded memory."""
    out = np.empty(len(ids), dtype=np.float32)
    width = data.shape[1]
    step = max(1024, PAIR_CHUNK_ELEMENTS // max(width, 1))
    for s in range(0, len(ids), step):
        qi, di = q_idx[s : s + step], ids[s : s + step]
        if metric == "hamming":
            out[s : s + step] = _popcount(queries[qi] ^ data[di]).sum(axis=1, dtype=np.int32)
            continue
        if metric in BLOCKWISE_METRICS:
            out[s : s + step] = blockwise.pair_distances(data[di][:, None, :], queries[qi],
                                                         metric)[:, 0]
            continue
        dots = np.einsum("ij,ij->i", queries[qi], data[di])
        if metric == "euclidean":
            assert norms is not None
            qn = np.einsum("ij,ij->i", queries[qi], queries[qi])
            out[s : s + step] = np.sqrt(np.maximum(qn + norms[di] - 2 * dots, 0))
        elif metric == "angular":
            out[s : s + step] = 1 - dots
        else:
            out[s : s + step] = -dots
    return out


def rerank(
    data: np.ndarray,
    norms: np.ndarray | None,
    queries: np.ndarray,
    q_idx: np.ndarray,
    ids: np.ndarray,
    k: int,
    metric: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k among candidate pairs; duplicates (same id from several tables) dropped.

    Returns (distances, ids, candidates per query). Queries with fewer than k
    distinct candidates are padded with id -1 and distance +inf.
    """
    m, n = len(queries), len(data)
    if len(ids) == 0:
        return (np.full((m, k), np.inf, dtype=np.float32), np.full((m, k), -1, dtype=np.int64),
                np.zeros(m, dtype=np.int64))
    key = sorted_unique(q_idx.astype(np.int64) * n + ids, m * n)  # by query, then id
    q_idx, ids = np.divmod(key, n)
    n_cand = np.bincount(q_idx, minlength=m)
    dist = pair_distances(data, norms, queries, q_idx, ids, metric)
    order = np.lexsort((dist, q_idx))  # stable: equal distances keep the lower id first
    q_sorted = q_idx[order]
    rank = np.arange(len(order)) - (np.cumsum(n_cand) - n_cand)[q_sorted]
    keep = rank < k
    out_d = np.full((m, k), np.inf, dtype=np.float32)
    out_i = np.full((m, k), -1, dtype=np.int64)
    out_d[q_sorted[keep], rank[keep]] = dist[order[keep]]
    out_i[q_sorted[keep], rank[keep]] = ids[order[keep]]
    return out_d, out_i, n_cand
