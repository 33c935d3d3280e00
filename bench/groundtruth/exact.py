"""Exact nearest neighbours: the reference every recall figure is measured against.

Distance conventions (shared by ``exact_knn`` and ``exact_distances``):

- ``euclidean``: L2 distance, not squared (as ann-benchmarks stores it);
- ``angular``: 1 - dot. The harness L2-normalises angular data before it gets
  here, so this is 1 - cosine; un-normalised input gives 1 - dot, not cosine;
- ``ip``: -dot, so that smaller is better for every metric;
- ``hamming``: number of differing bits between packed uint8 codes;
- ``l1``: cityblock distance; ``jensen-shannon``: JS divergence (natural logs) of
  rows the harness has scaled to sum 1 (see bench.core.distances). These two have
  no product form and are scored block by block in float64 (blockwise.py).

Ranking is ascending distance with ties broken by the smaller database id, so
the ground truth is deterministic even on data with duplicate vectors.

How: candidates are found with float32 matrix products over blocks of the
database (outer loop, so a memory-mapped file is read once per query chunk) and
queries (inner loop), keeping a running top-(k + margin) per query. Numpy's BLAS
is used rather than Faiss' flat index. The OpenBLAS bundled with faiss-cpu is
older and misdetects recent CPUs (on the 2-core AMD EPYC used for development it
picks its AVX2 "Zen" kernels, numpy's picks AVX-512); there the two ran within
the noise of a shared machine of each other (benchmarks/groundtruth_speed.py), so
the deciding reasons were: ties ordered by id, a memory-mapped database read
block by block instead of copied into an index, and no exposure to the slow
kernels the faiss build picks elsewhere. On a 2-core Xeon where both libraries
pick AVX-512 kernels, this path (selection and float64 re-scoring included) ran
at 1.0-1.17x the speed of Faiss IndexFlatL2 at k=10. The selection never sorts a block:
after the first block only scores below the query's current worst candidate
survive a single comparison, which keeps the cost near that of the products.
The candidates are then re-scored exactly in float64 and re-sorted, because the
float32 expansion |x|^2 - 2xy loses precision for near neighbours.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.core.distances import BLOCKWISE_METRICS, canonical_metric
from bench.core.errors import BenchError
from bench.groundtruth import blockwise
from bench.groundtruth.topk import _ID_MASK, _SENTINEL, _select

#: queries x database rows per float32 product block (16 MiB of scores). Each thread
#: runs its own products and selection; on a 2-core Xeon (AVX-512) 512 x 8192 took
#: 0.65 s for 100k x 5k x 128 where 1024 x 16384 took 0.88 s: the selection passes
#: over a smaller score block run mostly from cache.
QUERY_BLOCK = 512
DB_BLOCK = 8192
#: hamming has no BLAS product; smaller blocks keep the XOR temporaries small
HAMMING_QUERY_BLOCK = 256
#: l1 / jensen-shannon: float64 score blocks of 256 x 8192 (16 MiB)
BLOCKWISE_QUERY_BLOCK = 256
#: queries held in memory as float32 at once; the database is re-read per chunk
QUERY_CHUNK_BYTES = 256 << 20
#: database rows sampled to centre euclidean data
CENTRE_ROWS = 4096
#: extra float32 candidates re-scored in float64 to fix the order near the k-th
MARGIN = 16
#: float64 neighbour rows gathered at once when re-scoring exactly: small enough for
#: the temporaries to stay in cache (32 MiB took twice as long as 4 MiB)
EXACT_BLOCK_BYTES = 4 << 20

Progress = Callable[[int, int], None]


def _hamming_scores(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bit differences of (nq, w) x (n, w) uint64 words, as float32 (exact below 2^24)."""
    acc = np.bitwise_count(q[:, None, 0] ^ x[None, :, 0]).astype(np.uint16)
    for w in range(1, q.shape[1]):
        acc += np.bitwise_count(q[:, None, w] ^ x[None, :, w])
    return acc.astype(np.float32)


def _words(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes padded with zero bytes to whole uint64 words (zeros XOR to 0)."""
    codes = np.asarray(codes, dtype=np.uint8)
    pad = (-codes.shape[1]) % 8
    if pad:
        codes = np.pad(codes, ((0, 0), (0, pad)))
    return np.ascontiguousarray(codes).view(np.uint64)


def _centre(database: np.ndarray, metric: str) -> np.ndarray | None:
    """A point near the data's mean, subtracted before euclidean products.

    L2 distances do not change under translation, but the float32 error of
    |x|^2 - 2xy grows with |x|^2: data far from the origin (an offset of 30 with a
    spread of 0.01) otherwise gets a float32 order no margin can repair. A sample
    of evenly spaced rows is enough and reads little of a memory-mapped file.
    """
    if metric != "euclidean" or len(database) == 0:
        return None
    rows = np.unique(np.linspace(0, len(database) - 1, min(len(database), CENTRE_ROWS)).astype(int))
    return np.asarray(database[rows], dtype=np.float64).mean(axis=0).astype(np.float32)


def _database_block(block: np.ndarray, metric: str, centre: np.ndarray | None) -> np.ndarray:
    """Database rows in the form whose product with the query block is the score.

    euclidean: [x, |x|^2] (x centred) against [-2q, 1] gives |x|^2 - 2qx, which
    ranks like the L2 distance and needs no extra pass over the score block;
    angular and ip: x against -q gives -qx.
    """
    if metric == "hamming":
        return _words(block)
    if metric in BLOCKWISE_METRICS:
        return np.asarray(block, dtype=np.float64)
    x = np.asarray(block, dtype=np.float32)  # no copy for a float32 memmap
    if centre is None:
        return x  # angular / ip: the queries carry the minus sign
    out = np.empty((len(x), x.shape[1] + 1), dtype=np.float32)
    np.subtract(x, centre, out=out[:, :-1])
    out[:, -1] = np.einsum("ij,ij->i", out[:, :-1], out[:, :-1])
    return out


def _query_chunk(queries: np.ndarray, metric: str, centre: np.ndarray | None) -> np.ndarray:
    if metric == "hamming":
        return _words(queries)
    if metric in BLOCKWISE_METRICS:
        return np.asarray(queries, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float32)
    if centre is not None:
        out = np.ones((len(q), q.shape[1] + 1), dtype=np.float32)
        np.multiply(q - centre, -2.0, out=out[:, :-1])
        return out
    return np.negative(q)


def _check_inputs(database: np.ndarray, queries: np.ndarray, metric: str) -> str:
    metric = canonical_metric(metric)
    if database.ndim != 2 or queries.ndim != 2:
        raise BenchError(
            f"ground truth needs 2-D database and queries, got {database.shape} and {queries.shape}"
        )
    if database.shape[1] != queries.shape[1]:
        raise BenchError(
            f"ground truth: database shape {database.shape} and queries shape {queries.shape} "
            "have different dimensions"
        )
    if metric == "hamming" and (database.dtype != np.uint8 or queries.dtype != np.uint8):
        raise BenchError(
            f"metric hamming needs packed uint8 codes, got {database.dtype} and {queries.dtype}"
        )
    if len(database) >= 2**32 - 1:
        raise BenchError(f"database of {len(database)} rows: ground truth supports < 2^32 rows")
    return metric


def exact_knn(
    database: np.ndarray, queries: np.ndarray, k: int, metric: str, *,
    threads: int | None = None, progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours: (distances float32 (nq, k), ids int64 (nq, k)).

    Rows with fewer than k database items are padded with id -1 and distance inf.
    Inputs must be finite (``bench.datasets.vectors.validate_vectors`` checks that).
    ``threads`` (default: the CPUs this process may use) is the parallelism;
    ``progress(done_queries, total)`` is called as blocks finish.

    With several threads the queries are split into contiguous ranges, one per
    thread, each running single-threaded BLAS products *and* its own selection:
    numpy releases the GIL in both, so the selection passes, which would otherwise
    run on one core while the other waits, run in parallel too (on 2 cores: 0.95 s
    -> 0.6 s for 100k x 5k x 128). Every query's result is the same either way.
    """
    from threadpoolctl import threadpool_limits

    metric = _check_inputs(database, queries, metric)
    if k < 1:
        raise BenchError(f"k must be at least 1, got {k}")
    nq = len(queries)
    qb = _query_block(metric)
    workers = max(1, threads or len(os.sched_getaffinity(0)))
    workers = min(workers, max(1, -(-nq // qb)))  # at least one query block each
    out_d = np.full((nq, k), np.inf, dtype=np.float32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    centre = _centre(database, metric)
    report = _shared_progress(progress, nq)
    bounds = np.linspace(0, nq, workers + 1).astype(int)
    ranges = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def run(lo: int, hi: int) -> None:
        _knn_range(database, queries, lo, hi, k, metric, centre, out_d, out_i, report)

    with threadpool_limits(limits=1 if workers > 1 else threads, user_api="blas"):
        if workers == 1:
            run(0, nq)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="groundtruth") as pool:
                for future in [pool.submit(run, lo, hi) for lo, hi in ranges]:
                    future.result()
    return out_d, out_i


def _query_block(metric: str) -> int:
    if metric == "hamming":
        return HAMMING_QUERY_BLOCK
    return BLOCKWISE_QUERY_BLOCK if metric in BLOCKWISE_METRICS else QUERY_BLOCK


def _shared_progress(progress: Progress | None, total: int) -> Callable[[int], None]:
    """A thread-safe ``advance(n_queries)`` that reports the running total."""
    lock = threading.Lock()
    done = [0]

    def advance(n: int) -> None:
        if progress is None:
            return
        with lock:
            done[0] += n
            progress(min(done[0], total), total)

    return advance


def _knn_range(
    database: np.ndarray, queries: np.ndarray, lo: int, hi: int, k: int, metric: str,
    centre: np.ndarray | None, out_d: np.ndarray, out_i: np.ndarray,
    advance: Callable[[int], None],
) -> None:
    """Exact neighbours of queries[lo:hi], written into out_d / out_i[lo:hi]."""
    n = len(database)
    m = min(n, k + (0 if metric == "hamming" else MARGIN)) if n else 1
    qb = _query_block(metric)
    row_bytes = max(1, queries.shape[1]) * (8 if metric in BLOCKWISE_METRICS else 4)
    chunk = max(qb, QUERY_CHUNK_BYTES // row_bytes // qb * qb)
    for c0 in range(lo, hi, chunk):
        c1 = min(hi, c0 + chunk)
        q = _query_chunk(queries[c0:c1], metric, centre)
        top = np.full((len(q), m), _SENTINEL, dtype=np.uint64)
        score_buf = np.empty(min(len(q), qb) * min(n, DB_BLOCK), dtype=np.float32)
        mask_buf = np.empty(score_buf.size, dtype=bool)
        reported = 0
        for start in range(0, n, DB_BLOCK):
            x = _database_block(database[start : start + DB_BLOCK], metric, centre)
            for b0 in range(0, len(q), qb):
                qs = q[b0 : b0 + qb]
                if metric == "hamming":
                    scores = _hamming_scores(qs, x)
                elif metric in BLOCKWISE_METRICS:
                    out = score_buf[: len(qs) * len(x)].reshape(len(qs), len(x))
                    out[...] = blockwise.block_scores(qs, x, metric)
                    scores = out
                else:
                    out = score_buf[: len(qs) * len(x)].reshape(len(qs), len(x))
                    scores = np.matmul(qs, x.T, out=out)
                top[b0 : b0 + qb] = _select(top[b0 : b0 + qb], scores, start, mask_buf)
            # progress in query-equivalents: the share of the database scanned so far
            now = len(q) * min(n, start + DB_BLOCK) // n
            advance(now - reported)
            reported = now
        ids = np.where(top == _SENTINEL, -1, (top & _ID_MASK).astype(np.int64))
        dist, ids = _refine(database, queries[c0:c1], ids, metric, k)
        out_d[c0:c1] = dist
        out_i[c0:c1] = ids
        advance(len(q) - reported)


def _refine(
    database: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidates in float64 and sort by (distance, id); keep the first k."""
    dist = exact_distances(database, queries, ids, metric)
    dist = np.where(ids < 0, np.inf, dist)
    sort_ids = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    order = np.lexsort((sort_ids, dist), axis=-1)[:, :k]
    dist = np.take_along_axis(dist, order, axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return dist.astype(np.float32), ids


def exact_distances(
    database: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str
) -> np.ndarray:
    """Exact float64 distances (nq, k) of the given database ids; NaN where id == -1.

    Computed from differences / dot products in float64, never from the float32
    expansion, so tie-aware recall can use a tight relative tolerance. Neighbour
    rows are gathered per block of queries, so memory stays bounded.
    """
    metric = _check_inputs(database, queries, metric)
    ids = np.asarray(ids)
    if ids.ndim != 2 or len(ids) != len(queries):
        raise BenchError(f"neighbour ids of shape {ids.shape} do not match {len(queries)} queries")
    n = len(database)
    bad = (ids < -1) | (ids >= n)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BenchError(
            f"neighbour id {int(ids[row, col])} (query {row}, rank {col}) is outside the "
            f"database of {n} items"
        )
    out = np.full(ids.shape, np.nan, dtype=np.float64)
    if ids.size == 0:
        return out
    nk = max(1, ids.shape[1])
    step = max(1, EXACT_BLOCK_BYTES // (nk * max(1, database.shape[1]) * 8))
    for b0 in range(0, len(ids), step):
        block = ids[b0 : b0 + step]
        valid = block >= 0
        if not valid.any():
            continue
        # Invalid ids read row 0 and are masked afterwards: a regular (b, k, d) shape
        # lets the query broadcast instead of being copied per neighbour.
        x = np.asarray(database[np.where(valid, block, 0)])
        q = np.asarray(queries[b0 : b0 + step])
        if metric == "hamming":
            d = np.bitwise_count(x ^ q[:, None, :]).sum(axis=2, dtype=np.int64)
        elif metric in BLOCKWISE_METRICS:
            d = blockwise.pair_distances(x, q, metric)
        elif metric == "euclidean":
            diff = np.subtract(x, q[:, None, :], dtype=np.float64)
            d = np.sqrt(np.einsum("bkd,bkd->bk", diff, diff))
        else:  # products of float32 values are exact in float64; only the sum rounds
            dot = np.einsum("bkd,bd->bk", x, q.astype(np.float64))
            d = 1.0 - dot if metric == "angular" else -dot
        out[b0 : b0 + step] = np.where(valid, d, np.nan)
    return out


# The cache and the structural check live in cache.py; re-exported for callers.
from bench.groundtruth.cache import (  # noqa: E402
    ground_truth_problem,
    load_or_compute_ground_truth,
)

__all__ = ["exact_knn", "exact_distances", "ground_truth_problem",
           "load_or_compute_ground_truth"]
