"""Exact search in plain numpy: a reference that depends on no ANN library.

Useful to cross-check Faiss ``Flat`` (a disagreement points at a metric or
normalisation bug, not at approximation) and to give the conformance suite an
exact backend for every metric, Hamming included.
"""

from __future__ import annotations

import numpy as np

from bench.algorithms import register
from bench.algorithms._numpy_knn import exact_knn, sq_norms
from bench.algorithms.base import Backend


@register("bruteforce")
class BruteForceBackend(Backend):
    metrics = ("euclidean", "angular", "ip", "hamming", "l1", "jensen-shannon")
    exact = True
    accurate_params = {"build": {}, "query": {}}

    def __init__(self, metric: str, dim: int) -> None:
        super().__init__(metric, dim)
        self._data: np.ndarray | None = None
        self._norms: np.ndarray | None = None

    def build(self, data: np.ndarray) -> None:
        self._data = data
        self._norms = sq_norms(data) if self.metric == "euclidean" else None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._data is not None, "build() first"
        return exact_knn(self._data, self._norms, queries, k, self.metric)

    def index_bytes(self) -> int | None:
        if self._data is None:
            return None
        extra = 0 if self._norms is None else self._norms.nbytes
        return int(self._data.nbytes + extra)
