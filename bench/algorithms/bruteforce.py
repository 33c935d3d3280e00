"""Exact search in plain numpy: a reference that depends on no ANN library.

It *is* the ground truth's exact k-NN (bench.groundtruth.exact), so the backend
and the table every recall is scored against cannot drift apart: one
implementation, with the same tie order (lower id first) and float64 re-scoring.

Useful to cross-check Faiss ``Flat`` (a disagreement points at a metric or
normalisation bug, not at approximation) and to give the conformance suite an
exact backend for every metric, Hamming included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend
from bench.algorithms.range import check_radius, within_radius
from bench.groundtruth.exact import exact_knn


@register("bruteforce")
class BruteForceBackend(Backend):
    metrics = ("euclidean", "angular", "ip", "hamming", "l1", "jensen-shannon")
    exact = True
    query_params_doc = {"radius": "range search: the k closest within this harness distance"}
    accurate_params = {"build": {}, "query": {}}

    def __init__(self, metric: str, dim: int) -> None:
        super().__init__(metric, dim)
        self._data: np.ndarray | None = None

    def build(self, data: np.ndarray) -> None:
        self._data = data

    def save(self, directory: Path) -> None:
        assert self._data is not None, "build() first"
        np.save(directory / "data.npy", np.asarray(self._data))

    def load(self, directory: Path) -> None:
        self.build(np.load(directory / "data.npy"))

    def set_query_params(self, *, radius: Any = None, **unknown: Any) -> None:
        """``radius``: range search (bench.algorithms.range), the k closest within it."""
        super().set_query_params(**unknown)
        self._radius = None if radius is None else check_radius(radius, "bruteforce")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._data is not None, "build() first"
        dist, ids = exact_knn(self._data, queries, k, self.metric, threads=self.threads)
        radius = getattr(self, "_radius", None)
        return (dist, ids) if radius is None else within_radius(dist, ids, radius)

    def index_bytes(self) -> int | None:
        if self._data is None:
            return None
        return int(self._data.nbytes)
