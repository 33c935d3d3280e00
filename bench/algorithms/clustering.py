"""A plain clustering index: scikit-learn partitions the data, queries visit the nearest parts.

This is what an IVF index is without Faiss's engineering (no SIMD list scans, no
compression): it shows how much of Faiss IVF's trade-off comes from the
partition itself. The partition comes from k-means, bisecting k-means, or
agglomerative (Ward) clustering of a sample; every database row is then
assigned to its nearest centroid, by the same rule queries use to pick the
``probe`` clusters they visit, and candidates are re-ranked exactly.

Centroid rule per metric: euclidean - L2; angular - cosine to the normalised
centroid; ip - largest inner product with the raw centroid (as Faiss IVF does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# imported with the module, not in build(): the worker's forkserver preloads backend modules,
# while an import inside build() would count ~120 MB of scipy/sklearn as index memory (USS)
from sklearn.cluster import AgglomerativeClustering, BisectingKMeans, KMeans

from bench.algorithms import register
from bench.algorithms._numpy_knn import exact_knn, gather_ranges, rerank, sq_norms
from bench.algorithms.base import Backend, training_sample
from bench.core.errors import BenchError

METHODS = ("kmeans", "bisecting", "agglomerative")
_PAIR_BUDGET = 1 << 24


@register("cluster-search")
class ClusterSearchBackend(Backend):
    metrics = ("euclidean", "angular", "ip")
    query_params_doc = {"probe": "clusters visited per query, nearest centroids first"}
    accurate_params = {"build": {"n_clusters": 16}, "query": {"probe": 8}}

    def __init__(
        self,
        metric: str,
        dim: int,
        *,
        n_clusters: int = 256,
        method: str = "kmeans",
        sample_size: int | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(metric, dim)
        self.require_at_least("build", "n_clusters", n_clusters, 1)
        if method not in METHODS:
            raise BenchError(
                f"cluster-search: build parameter method must be one of {', '.join(METHODS)}, "
                f"got {method!r}"
            )
        if sample_size is not None and sample_size < 1:
            raise BenchError(
                f"cluster-search: build parameter sample_size must be >= 1, got {sample_size}"
            )
        self.n_clusters = n_clusters
        self.method = method
        self.sample_size = sample_size
        self.seed = seed
        self.probe = 1
        self._centroid_metric = "euclidean" if metric == "euclidean" else metric
        self._centroids: np.ndarray | None = None
        self._cnorms: np.ndarray | None = None
        self._data: np.ndarray | None = None
        self._norms: np.ndarray | None = None
        self._order = np.empty(0, dtype=np.int64)
        self._starts = np.empty(0, dtype=np.int64)
        self._counts = np.empty(0, dtype=np.int64)
        self._cluster_size = 0.0
        self._stats = np.zeros(2, dtype=np.int64)  # queries, candidates

    def _sample(self, data: np.ndarray, n_clusters: int) -> np.ndarray:
        """Rows the clustering is fitted on: agglomerative is quadratic; k-means needs few."""
        default = 5_000 if self.method == "agglomerative" else 256 * n_clusters
        return training_sample(data, self.sample_size or default, self.seed)

    def _fit(self, sample: np.ndarray, n_clusters: int) -> np.ndarray:
        if self.method == "kmeans":
            model: Any = KMeans(n_clusters, n_init=1, random_state=self.seed)
        elif self.method == "bisecting":
            model = BisectingKMeans(n_clusters, random_state=self.seed)
        else:
            labels = AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(sample)
            sums = np.zeros((n_clusters, sample.shape[1]), dtype=np.float64)
            np.add.at(sums, labels, sample)
            return (sums / np.bincount(labels, minlength=n_clusters)[:, None]).astype(np.float32)
        model.fit(sample)
        return np.asarray(model.cluster_centers_, dtype=np.float32)

    def _nearest(self, x: np.ndarray, probe: int) -> np.ndarray:
        assert self._centroids is not None
        return exact_knn(self._centroids, self._cnorms, x, probe, self._centroid_metric)[1]

    def build(self, data: np.ndarray) -> None:
        n = len(data)
        n_clusters = max(1, min(self.n_clusters, n))  # tiny databases: one row per cluster
        if n:
            sample = self._sample(data, n_clusters)
            centroids = self._fit(np.ascontiguousarray(sample, dtype=np.float32), n_clusters)
        else:
            centroids = np.zeros((1, self.dim), dtype=np.float32)
        if self.metric == "angular":
            lengths = np.linalg.norm(centroids, axis=1, keepdims=True)
            centroids = centroids / np.maximum(lengths, 1e-12)
        self._centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self._cnorms = sq_norms(self._centroids) if self.metric == "euclidean" else None
        labels = np.concatenate(
            [self._nearest(data[s : s + 65536], 1)[:, 0] for s in range(0, n, 65536)]
        ) if n else np.empty(0, dtype=np.int64)
        self._order = np.argsort(labels, kind="stable")
        self._counts = np.bincount(labels, minlength=len(centroids)).astype(np.int64)
        self._starts = np.cumsum(self._counts) - self._counts
        self._cluster_size = float((self._counts.astype(np.float64) ** 2).sum()) / max(n, 1)
        self._data = data
        self._norms = sq_norms(data) if self.metric == "euclidean" else None

    def set_query_params(self, *, probe: int | None = None, **unknown: Any) -> None:
        if unknown:
            raise BenchError(
                f"cluster-search: unknown query parameter(s) {sorted(unknown)}; expected: probe"
            )
        if probe is not None:
            self.require_at_least("query", "probe", probe, 1)
            self.probe = int(probe)
        self._stats[:] = 0

    def _search_block(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        assert self._data is not None and self._centroids is not None, "build() first"
        probe = min(self.probe, len(self._centroids))
        clusters = self._nearest(queries, probe).ravel()
        counts = self._counts[clusters]
        rows = np.repeat(np.arange(len(queries)), probe)
        q_idx = np.repeat(rows, counts)
        ids = self._order[gather_ranges(self._starts[clusters], counts)]
        return rerank(self._data, self._norms, queries, q_idx, ids, k, self.metric)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = len(queries)
        per_query = max(1.0, self._cluster_size * self.probe)
        step = int(max(1, min(m, _PAIR_BUDGET // per_query)))
        parts = [self._search_block(queries[s : s + step], k) for s in range(0, max(m, 1), step)]
        if len(parts) == 1:
            dist, ids, n_cand = parts[0]
        else:
            dist, ids, n_cand = (np.concatenate([p[j] for p in parts]) for j in range(3))
        self._stats += (m, int(n_cand.sum()))
        return dist, ids

    def extra_metrics(self) -> dict[str, float]:
        """Mean candidates re-ranked per query since the last ``set_query_params``."""
        queries, candidates = (int(v) for v in self._stats)
        return {"candidates_per_query": candidates / queries} if queries else {}

    def index_bytes(self) -> int | None:
        """Centroids + inverted lists + the vectors kept for exact re-ranking."""
        if self._data is None or self._centroids is None:
            return None
        norms = 0 if self._norms is None else self._norms.nbytes
        return int(self._centroids.nbytes + self._order.nbytes + self._starts.nbytes
                   + self._counts.nbytes + self._data.nbytes + norms)
