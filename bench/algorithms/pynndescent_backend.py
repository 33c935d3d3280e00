"""PyNNDescent: nearest-neighbour descent graph, pruned into a search graph.

An optional extra (``pip install 'featbench[pynndescent]'``). Its kernels are
compiled by numba on first use in each process, which takes tens of seconds
per metric: that time lands in the first build's time, as it would for a user.

No ``ip``: PyNNDescent's ``dot`` metric normalises the vectors, so it would
silently answer a cosine query. ``hamming`` uses ``bit_hamming`` on the packed
codes as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, pad_results
from bench.core.errors import BenchError, MissingDependencyError

_METRICS = {"euclidean": "euclidean", "angular": "cosine", "hamming": "bit_hamming"}


def _nndescent_class() -> Any:
    try:
        from pynndescent import NNDescent
    except ImportError:
        raise MissingDependencyError(
            "pynndescent", "pynndescent", "the pynndescent backend"
        ) from None
    return NNDescent


@register("pynndescent")
class PyNNDescentBackend(Backend):
    metrics = ("euclidean", "angular", "hamming")
    query_params_doc = {
        "epsilon": "search frontier slack: larger is slower and more accurate (default 0.1)"
    }
    accurate_params = {"build": {"n_neighbors": 40}, "query": {"epsilon": 0.4}}

    def __init__(
        self,
        metric: str,
        dim: int,
        *,
        n_neighbors: int = 30,
        diversify_prob: float = 1.0,
        pruning_degree_multiplier: float = 1.5,
        seed: int = 42,
    ) -> None:
        super().__init__(metric, dim)
        self._NNDescent = _nndescent_class()
        self.require_at_least("build", "n_neighbors", n_neighbors, 2)
        self.n_neighbors = n_neighbors
        self.diversify_prob = diversify_prob
        self.pruning_degree_multiplier = pruning_degree_multiplier
        self.seed = seed
        self.epsilon = 0.1
        self.index: Any = None
        self._data: np.ndarray | None = None

    def build(self, data: np.ndarray) -> None:
        self._data = data
        if len(data) <= 2:  # NN-descent needs a few points; search those exactly instead
            return
        self.index = self._NNDescent(
            data,
            metric=_METRICS[self.metric],
            n_neighbors=min(self.n_neighbors, len(data) - 1),
            diversify_prob=self.diversify_prob,
            pruning_degree_multiplier=self.pruning_degree_multiplier,
            random_state=self.seed,
            n_jobs=self.threads,
        )
        self.index.prepare()

    def set_query_params(self, *, epsilon: float | None = None, **unknown: Any) -> None:
        if unknown:
            raise BenchError(
                f"pynndescent: unknown query parameter(s) {sorted(unknown)}; expected: epsilon"
            )
        if epsilon is not None:
            self.require_at_least("query", "epsilon", epsilon, 0)
            self.epsilon = float(epsilon)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._data is not None, "build() first"
        if self.index is None:
            from bench.groundtruth.exact import exact_knn

            return exact_knn(self._data, queries, k, self.metric, threads=self.threads)
        kk = min(k, len(self._data))
        ids, dist = self.index.query(queries, k=kk, epsilon=self.epsilon)
        ids = ids.astype(np.int64)
        dist = dist.astype(np.float32)
        dist[ids < 0] = np.inf
        return pad_results(dist, ids, k) if kk < k else (dist, ids)

    def index_bytes(self) -> int | None:
        """The search graph (CSR arrays) plus the vectors it keeps for distances."""
        if self.index is None or self._data is None:
            return None
        graph = getattr(self.index, "_search_graph", None)  # no public accessor for it
        if graph is None:
            return None
        return int(graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes
                   + self._data.nbytes)
