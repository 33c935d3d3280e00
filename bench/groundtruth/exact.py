"""Exact nearest neighbours: the reference every recall figure is measured against.

Distance conventions (shared by ``exact_knn`` and ``exact_distances``):

- ``euclidean``: L2 distance, not squared (as ann-benchmarks stores it);
- ``angular``: 1 - dot. The harness L2-normalises angular data before it gets
  here, so this is 1 - cosine; un-normalised input gives 1 - dot, not cosine;
- ``ip``: -dot, so that smaller is better for every metric;
- ``hamming``: number of differing bits between packed uint8 codes.

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
from pathlib import Path

import numpy as np

from bench.core.distances import canonical_metric
from bench.core.errors import BenchError
from bench.core.fingerprint import fingerprint_obj

#: queries x database rows per float32 product block (16 MiB of scores). Each thread
#: runs its own products and selection; on a 2-core Xeon (AVX-512) 512 x 8192 took
#: 0.65 s for 100k x 5k x 128 where 1024 x 16384 took 0.88 s: the selection passes
#: over a smaller score block run mostly from cache.
QUERY_BLOCK = 512
DB_BLOCK = 8192
#: hamming has no BLAS product; smaller blocks keep the XOR temporaries small
HAMMING_QUERY_BLOCK = 256
#: queries held in memory as float32 at once; the database is re-read per chunk
QUERY_CHUNK_BYTES = 256 << 20
#: database rows sampled to centre euclidean data
CENTRE_ROWS = 4096
#: extra float32 candidates re-scored in float64 to fix the order near the k-th
MARGIN = 16
#: columns of the first database block selected densely to seed the thresholds
SEED_COLUMNS = 256
#: float64 neighbour rows gathered at once when re-scoring exactly: small enough for
#: the temporaries to stay in cache (32 MiB took twice as long as 4 MiB)
EXACT_BLOCK_BYTES = 4 << 20

_SENTINEL = np.uint64(np.iinfo(np.uint64).max)
_ID_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)

Progress = Callable[[int, int], None]


def _ordered(scores: np.ndarray) -> np.ndarray:
    """Map float32 to uint32 so that integer order equals float order (no NaN here)."""
    bits = scores.view(np.uint32)
    return np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))


def _unordered(keys_hi: np.ndarray) -> np.ndarray:
    neg = (keys_hi & np.uint32(0x80000000)) == 0
    bits = np.where(neg, ~keys_hi, keys_hi & np.uint32(0x7FFFFFFF)).astype(np.uint32)
    return bits.view(np.float32)


def _keys(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(score, id) packed in one uint64, so one np.partition selects by score then id.

    Adding +0.0 turns -0.0 into +0.0, whose bits differ although the floats are equal.
    """
    ordered = _ordered(np.add(scores, np.float32(0.0), dtype=np.float32))
    return (ordered.astype(np.uint64) << _SHIFT) | ids.astype(np.uint64)


def _merge(top: np.ndarray, new: np.ndarray) -> np.ndarray:
    both = np.concatenate([top, new], axis=1)
    m = top.shape[1]
    return np.partition(both, m - 1, axis=1)[:, :m]


def _dense(top: np.ndarray, scores: np.ndarray, start: int) -> np.ndarray:
    m = top.shape[1]
    keys = _keys(scores, np.arange(start, start + scores.shape[1], dtype=np.uint64)[None, :])
    if keys.shape[1] > m:
        keys = np.partition(keys, m - 1, axis=1)[:, :m]
    return _merge(top, keys)


def _select(top: np.ndarray, scores: np.ndarray, start: int, buf: np.ndarray) -> np.ndarray:
    """Merge one block of float32 scores (rows = queries) into the running top keys.

    ``buf`` is a reusable bool buffer of at least ``scores.size`` elements: fresh
    multi-megabyte arrays per block cost measurable page faults.
    """
    width = scores.shape[1]
    if not (top.max(axis=1) == _SENTINEL).any():
        return _sparse(top, scores, start, buf)
    # First block: seed the thresholds densely from a few columns, then widen the
    # sparse steps geometrically as the thresholds tighten.
    step = min(width, max(SEED_COLUMNS, 4 * top.shape[1]))
    top = _dense(top, scores[:, :step], start)
    pos = step
    while pos < width:
        step *= 4
        top = _select(top, scores[:, pos : pos + step], start + pos, buf)
        pos += step
    return top


def _sparse(top: np.ndarray, scores: np.ndarray, start: int, buf: np.ndarray) -> np.ndarray:
    rows_n, width = scores.shape
    # Strict '<': an equal score from this block has a larger id than the worst kept one.
    threshold = _unordered((top.max(axis=1) >> _SHIFT).astype(np.uint32))
    np.less(scores, threshold[:, None], out=buf[: scores.size].reshape(scores.shape))
    flat = _true_positions(buf[: scores.size])
    count = len(flat)
    if count == 0:
        return top
    if count > scores.size // 8:  # adversarial order: a dense partition is cheaper
        return _dense(top, scores, start)
    rows, cols = np.divmod(flat, width)
    per_row = np.bincount(rows, minlength=rows_n)
    offsets = np.cumsum(per_row) - per_row
    padded = np.full((rows_n, int(per_row.max())), _SENTINEL, dtype=np.uint64)
    padded[rows, np.arange(count) - offsets[rows]] = _keys(
        scores.reshape(-1)[flat] if scores.flags.c_contiguous else scores[rows, cols],
        cols.astype(np.uint64) + np.uint64(start),
    )
    return _merge(top, padded)


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a sparse 1-D bool array, scanning 8 bytes at a time.

    After the first block only a few scores in a million pass the threshold; finding
    the non-zero uint64 words first reads the mask 8x faster than testing each byte.
    """
    whole = len(mask) // 8 * 8
    # (a != 0 pass then a bool nonzero is ~2x faster than np.flatnonzero on uint64)
    words = np.flatnonzero(mask[:whole].view(np.uint64) != 0)
    hits = np.flatnonzero(mask[:whole].reshape(-1, 8)[words])
    flat = words[hits // 8] * 8 + hits % 8
    if whole < len(mask):
        flat = np.concatenate([flat, whole + np.flatnonzero(mask[whole:])])
    return flat


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
    qb = HAMMING_QUERY_BLOCK if metric == "hamming" else QUERY_BLOCK
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
    qb = HAMMING_QUERY_BLOCK if metric == "hamming" else QUERY_BLOCK
    row_bytes = max(1, queries.shape[1]) * 4
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
        elif metric == "euclidean":
            diff = np.subtract(x, q[:, None, :], dtype=np.float64)
            d = np.sqrt(np.einsum("bkd,bkd->bk", diff, diff))
        else:  # products of float32 values are exact in float64; only the sum rounds
            dot = np.einsum("bkd,bd->bk", x, q.astype(np.float64))
            d = 1.0 - dot if metric == "angular" else -dot
        out[b0 : b0 + step] = np.where(valid, d, np.nan)
    return out


def _cache_paths(cache_dir: Path, base: str, k: int) -> tuple[Path, Path]:
    return cache_dir / f"{base}-k{k}.ids.npy", cache_dir / f"{base}-k{k}.dist.npy"


def _load_cached(cache_dir: Path, base: str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    found = []
    for path in cache_dir.glob(f"{base}-k*.ids.npy"):
        try:
            found.append(int(path.name[len(base) + 2 : -len(".ids.npy")]))
        except ValueError:
            continue
    for cached_k in sorted(kk for kk in found if kk >= k):
        ids_path, dist_path = _cache_paths(cache_dir, base, cached_k)
        try:
            ids = np.load(ids_path, allow_pickle=False)
            dist = np.load(dist_path, allow_pickle=False)
        except (OSError, ValueError):  # half-written or damaged: recompute
            continue
        if ids.ndim == 2 and ids.shape == dist.shape and ids.shape[1] == cached_k:
            return np.ascontiguousarray(dist[:, :k]), np.ascontiguousarray(ids[:, :k])
    return None


def ground_truth_problem(ids: np.ndarray, dist: np.ndarray | None, n_database: int,
                         k: int) -> str | None:
    """What is structurally wrong with a ground-truth table, or None.

    Checked before any recall is computed from it: wrong ids inflate tie-aware recall
    (the k-th "true" distance grows, and everything counts as a tie), so a table with
    ids out of range, repeated ids in a row, or distances that are not ascending is
    refused rather than scored against.
    """
    if ids.ndim != 2 or ids.shape[1] < k:
        return f"expected {k} neighbour ids per query, got shape {ids.shape}"
    ids = ids[:, :k]
    bad = (ids < 0) | (ids >= n_database)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        return (f"query {row} has neighbour id {int(ids[row][bad[row]][0])}, outside the "
                f"database of {n_database} rows")
    ordered = np.sort(ids, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        return f"query {row} lists the same neighbour id twice"
    if dist is not None:
        d = np.asarray(dist[:, :k], dtype=np.float64)
        slack = np.maximum(1e-6 * np.abs(d[:, 1:]), 1e-9)
        unsorted = (d[:, 1:] < d[:, :-1] - slack).any(axis=1) | np.isnan(d).any(axis=1)
        if unsorted.any():
            row = int(np.flatnonzero(unsorted)[0])
            return f"the neighbours of query {row} are not in ascending order of distance"
    return None


def load_or_compute_ground_truth(
    cache_dir: Path, data_fingerprint: str, metric: str, k: int,
    compute: Callable[[], tuple[np.ndarray, np.ndarray]],
    verify: Callable[[np.ndarray], str | None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cached exact ground truth (distances, ids); a cached larger k serves a smaller one.

    Files are ``<key>-k<K>.{ids,dist}.npy`` with key = fingerprint_obj of the data
    fingerprint and metric (k is in the name rather than the hash so a larger k can
    be found). Each file is written atomically, distances first, so an ids file
    only exists next to a complete distances file.

    ``verify(ids)`` returns a problem or None. A cached table that fails it (a
    damaged or tampered cache) is removed and recomputed, with ``warn``; a freshly
    computed one that fails it raises, since then the data or the metric is wrong.
    """
    from bench.core.files import atomic_save_npy

    metric = canonical_metric(metric)
    cache_dir = Path(cache_dir)
    base = fingerprint_obj({"data": data_fingerprint, "metric": metric, "ground_truth": 1})
    cached = _load_cached(cache_dir, base, k) if cache_dir.is_dir() else None
    if cached is not None:
        problem = verify(cached[1]) if verify else None
        if problem is None:
            return cached
        if warn:
            warn(f"cached ground truth in {cache_dir} fails its check ({problem}): recomputing")
        for path in cache_dir.glob(f"{base}-k*.npy"):
            path.unlink(missing_ok=True)
    dist, ids = compute()
    dist, ids = np.asarray(dist, dtype=np.float32), np.asarray(ids, dtype=np.int64)
    if ids.ndim != 2 or ids.shape != dist.shape or ids.shape[1] < k:
        raise BenchError(f"ground truth has shape {ids.shape}/{dist.shape}, expected (n, {k})")
    problem = verify(ids[:, :k]) if verify else None
    if problem is not None:
        raise BenchError(f"exact ground truth fails its check ({problem}): "
                         "the metric or the data is wrong")
    ids_path, dist_path = _cache_paths(cache_dir, base, ids.shape[1])
    atomic_save_npy(dist_path, dist)
    atomic_save_npy(ids_path, ids)
    return np.ascontiguousarray(dist[:, :k]), np.ascontiguousarray(ids[:, :k])
