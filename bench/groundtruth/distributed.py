"""Exact k-NN split by database shard over a Ray cluster, merged exactly.

Why this shape: the database is the large side, so it is cut into contiguous row
ranges; every shard task runs the same ``exact_knn`` as one machine does (float32
candidates re-scored in float64, ranked by (distance, id)) and returns its top-k as
global ids. The union of the shards' top-k holds the global top-k, and the driver
re-scores that union in float64 and sorts by (distance, id) with ties to the lower id
(``exact._refine``, the step that ends the local computation too), so the ids are
identical to the local result. Shard tasks ask for CPUs only, never a ``bench_slot``:
nothing is timed here. A database too small for two shards (MIN_SHARD_ROWS) is
searched in the driver: same function, same result, no task start-up.

Files: a node memory-maps its rows from the driver's cache path when it can see it
(one node, or ``BENCH_RAY_SHARED``); otherwise each shard's rows travel through the
object store once, to the node that computes that shard only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cluster import ensure_ray, needs_shipping
from bench.groundtruth.exact import _check_inputs, _refine, exact_knn

#: fewer rows than this per shard cost more in task overhead than they save
MIN_SHARD_ROWS = 20_000

_remote: Any = None


def _shard_knn(source: Any, lo: int, hi: int, queries: np.ndarray, k: int, metric: str,
               threads: int) -> np.ndarray:
    """Body of a shard task: global ids (nq, min(k, rows)) of the shard's exact top-k."""
    if isinstance(source, str):
        rows = np.load(source, mmap_mode="r")[lo:hi]
    else:
        rows = source
    _, ids = exact_knn(rows, queries, min(k, hi - lo), metric, threads=threads)
    return np.where(ids < 0, -1, ids + lo)


def _remote_fn() -> Any:
    global _remote
    if _remote is None:
        ray = ensure_ray()
        _remote = ray.remote(num_cpus=1, max_retries=1)(_shard_knn)
    return _remote


def plan_shards(n: int, cpus: int, shards: int | None = None) -> list[tuple[int, int]]:
    """Contiguous row ranges: one per cluster CPU, none smaller than MIN_SHARD_ROWS."""
    count = shards or max(1, min(cpus, n // MIN_SHARD_ROWS))
    count = max(1, min(count, n))
    bounds = np.linspace(0, n, count + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def exact_knn_ray(
    database: np.ndarray, queries: np.ndarray, k: int, metric: str, *,
    database_path: str | Path | None = None, shards: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``exact_knn`` on the cluster: same (distances, ids), computed shard by shard.

    ``database_path`` (the .npy the database was loaded from) lets nodes that see the
    file read their rows themselves; ``progress(done_queries, total)`` advances as
    shards finish."""
    metric = _check_inputs(database, queries, metric)
    ray = ensure_ray()
    nq, n = len(queries), len(database)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ranges = plan_shards(n, cpus, shards)
    if len(ranges) == 1:  # one shard gains nothing from a task (and its worker start-up)
        return exact_knn(database, queries, k, metric, progress=progress)
    path = str(database_path) if database_path is not None else None
    ship = path is None or needs_shipping(ray, path)
    query_ref = ray.put(np.ascontiguousarray(queries))
    fn = _remote_fn()
    pending = []
    for lo, hi in ranges:
        source = ray.put(np.ascontiguousarray(database[lo:hi])) if ship else path
        pending.append(fn.remote(source, lo, hi, query_ref, k, metric, 1))
    order = {ref: i for i, ref in enumerate(pending)}
    parts: list[np.ndarray | None] = [None] * len(ranges)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        parts[order[ready[0]]] = ray.get(ready[0])
        if progress is not None:
            done = sum(p is not None for p in parts)
            progress(nq * done // len(ranges), nq)
    candidates = np.concatenate([p for p in parts if p is not None], axis=1)
    return _refine(database, queries, candidates, metric, k)
