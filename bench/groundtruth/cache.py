"""The ground-truth cache and the structural check every table passes before use.

Kept apart from the search itself (exact.py): the cache decides *whether* exact
k-NN has to run at all, and the check is what stops a wrong table (a damaged
cache, a user's shuffled neighbours file) from inflating recall.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.core.distances import canonical_metric
from bench.core.errors import BenchError
from bench.core.fingerprint import fingerprint_obj


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
        except (OSError, ValueError, EOFError):  # half-written or damaged: recompute
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
