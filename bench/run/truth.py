"""Ground truth for a run: reuse or compute, then check it before anything is scored.

Every recall the harness reports is measured against this table, so it is refused
(one line naming the file and the fix) rather than trusted when an independent
exact search on a seeded sample of queries disagrees with it.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.markup import escape

from bench.core.errors import BenchError
from bench.core.paths import cache_root
from bench.features.prepare import FeatureSet
from bench.groundtruth.exact import (
    exact_distances,
    exact_knn,
    ground_truth_problem,
    load_or_compute_ground_truth,
)
from bench.run.progress import progress_bar
from bench.scoring.metrics import tie_aware_recall

SANITY_QUERIES = 200
SANITY_MIN_RECALL = 0.99


def attach_ground_truth(fs: FeatureSet, ks: list[int], threads: int, console: Console,
                        progress: bool, seed: int = 0, recompute: bool = False,
                        device: str = "cpu", executor: str = "local") -> None:
    """Exact neighbours for every query, checked before anything is scored against them.

    The dataset's own neighbours are used unless ``recompute``; if they fail the check
    the run stops with one line naming the file and the fix (never a silent fallback).
    With ``executor="ray"`` the exact search is split by database shard over the cluster
    (bench.groundtruth.distributed: the same ids, cached the same way).
    """
    kmax = max(ks)
    n = len(fs.database)
    if kmax > n:
        raise BenchError(f"k={kmax} is larger than the database ({n} items)")
    sample = canary_sample(len(fs.queries), seed)

    def verify(ids: np.ndarray) -> str | None:
        problem = ground_truth_problem(ids, None, n, kmax)
        if problem is None:
            dist = exact_distances(fs.database, fs.queries, ids[:, :kmax], fs.metric)
            problem = ground_truth_problem(ids, dist, n, kmax)
        if problem is None:
            problem = _canary(fs, ids[:, :kmax], dist, kmax, sample)
        return problem

    if (not recompute and fs.source_neighbors is not None
            and fs.source_neighbors.shape[1] >= kmax):
        gt_ids = np.ascontiguousarray(fs.source_neighbors[:, :kmax])
        origin = "the dataset's own neighbours"
        problem = verify(gt_ids)
        if problem is not None:
            where = (fs.description.get("neighbors") or fs.description.get("file")
                     or "the dataset")
            raise BenchError(
                f"{where}: the neighbours file is wrong ({problem}); set "
                "`ground_truth: recompute` in the experiment to compute exact neighbours"
            )
    else:
        with progress_bar(console, progress) as bar:
            task = bar.add_task(f"ground truth k={kmax}", total=len(fs.queries))

            def compute() -> tuple[np.ndarray, np.ndarray]:
                if device != "cpu":
                    from bench.groundtruth.torch_knn import exact_knn_device

                    return exact_knn_device(fs.database, fs.queries, kmax, fs.metric, device)
                if executor == "ray":
                    from bench.groundtruth.distributed import exact_knn_ray

                    return exact_knn_ray(
                        fs.database, fs.queries, kmax, fs.metric, database_path=fs.database_path,
                        progress=lambda done, total: bar.update(task, completed=done))
                return exact_knn(fs.database, fs.queries, kmax, fs.metric, threads=threads,
                                 progress=lambda done, total: bar.update(task, completed=done))

            _, gt_ids = load_or_compute_ground_truth(
                cache_root() / "groundtruth", fs.fingerprint, fs.metric, kmax, compute,
                verify=verify,
                warn=lambda msg: console.print(f"[yellow]warning:[/] {escape(msg)}"),
            )
            bar.update(task, completed=len(fs.queries))
        origin = "exact search (cached)"
    fs.gt_ids = gt_ids
    fs.gt_dist = exact_distances(fs.database, fs.queries, gt_ids, fs.metric)
    fs.description["ground_truth"] = origin
    fs.description["canary_queries"] = len(sample)
    fs.description["canary_seed"] = seed
    fs.description["sanity_exact_recall"] = 1.0


def canary_sample(n_queries: int, seed: int) -> np.ndarray:
    """A seeded sample spread over all queries (not the first ones: a table damaged
    only after row 200 must fail too)."""
    m = min(SANITY_QUERIES, n_queries)
    rng = np.random.default_rng([seed, 0xCA7A])
    return np.sort(rng.choice(n_queries, size=m, replace=False))


def _canary(fs: FeatureSet, gt_ids: np.ndarray, gt_dist: np.ndarray, k: int,
            sample: np.ndarray) -> str | None:
    """An independent exact search (Faiss flat: _independent_search) must agree with
    the ground truth.

    Both directions are checked with tie-aware recall: the independent results must
    lie within the ground truth's k-th distance, and the ground truth's must lie
    within the independent search's own k-th distance. The second direction is what
    catches wrong ids: they make the "true" k-th distance large, so the first alone
    passes everything as a tie.
    """
    queries = np.ascontiguousarray(fs.queries[sample])
    ids = _independent_search(fs, queries, k)
    found = np.sort(exact_distances(fs.database, queries, ids.astype(np.int64), fs.metric),
                    axis=1)
    expected = gt_dist[sample]
    forward = float(tie_aware_recall(found, expected, k).mean())
    backward = float(tie_aware_recall(expected, found, k).mean())
    recall = min(forward, backward)
    if recall < SANITY_MIN_RECALL:
        return (f"an independent exact search agrees on {recall:.3f} of the neighbours of "
                f"{len(sample)} sampled queries (metric {fs.metric}, need "
                f"{SANITY_MIN_RECALL})")
    return None


def _independent_search(fs: FeatureSet, queries: np.ndarray, k: int) -> np.ndarray:
    """Faiss' flat index of the metric: IndexBinaryFlat for hamming, IndexFlat with
    METRIC_L1 / METRIC_JensenShannon for the block-wise metrics (code independent of
    bench.groundtruth). Faiss scores Jensen-Shannon as NaN at a zero component, so
    data with zeros is checked with scipy's ``cdist(..., "jensenshannon")`` instead
    (its square is the divergence; slower, and only then)."""
    import faiss

    from bench.algorithms.faiss_backend import faiss_metric_of

    if fs.metric == "jensen-shannon" and _has_zero(fs.database, queries):
        return _scipy_js_search(fs.database, queries, k)
    # faiss.knn / knn_hamming run the flat indexes' own kernels straight over the
    # memory-mapped database: adding it to an index would copy it into the driver
    # (8 GB at 500,000 x 4,096)
    if fs.metric == "hamming":
        ids = faiss.knn_hamming(np.ascontiguousarray(queries, dtype=np.uint8),
                                np.ascontiguousarray(fs.database), k)[1]
    else:
        ids = faiss.knn(queries, fs.database, k, metric=faiss_metric_of(faiss, fs.metric))[1]
    return np.asarray(ids, dtype=np.int64)


def _has_zero(database: np.ndarray, queries: np.ndarray) -> bool:
    if (queries == 0).any():
        return True
    return any((database[s : s + 65536] == 0).any() for s in range(0, len(database), 65536))


def _scipy_js_search(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    from scipy.spatial.distance import cdist

    best_d = np.full((len(queries), 0), np.inf)
    best_i = np.empty((len(queries), 0), dtype=np.int64)
    for s in range(0, len(database), 8192):
        d = cdist(queries.astype(np.float64), np.asarray(database[s : s + 8192], np.float64),
                  "jensenshannon")
        best_d = np.hstack([best_d, d])
        best_i = np.hstack([best_i, np.broadcast_to(np.arange(s, s + d.shape[1]), d.shape)])
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, 1)
        best_i = np.take_along_axis(best_i, keep, 1)
    return best_i
