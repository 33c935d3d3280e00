"""usearch (Unum): a compact HNSW with SIMD kernels and optional lower-precision storage.

An optional extra (``pip install 'featbench[usearch]'``). ``angular`` uses
usearch's ``ip`` metric on the already-normalised vectors (1 - inner product is
the cosine distance); ``hamming`` stores the packed codes as ``b1`` bit vectors.
usearch takes no seed: single-threaded builds are still reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, add_chunks
from bench.core.errors import BenchError, MissingDependencyError

_METRICS = {"euclidean": "l2sq", "angular": "ip", "ip": "ip", "hamming": "hamming"}
DTYPES = ("f32", "f16", "bf16", "i8")


def _usearch_index() -> Any:
    try:
        from usearch.index import Index
    except ImportError:
        raise MissingDependencyError("usearch", "usearch", "the usearch backend") from None
    return Index


@register("usearch")
class USearchBackend(Backend):
    metrics = ("euclidean", "angular", "ip", "hamming")
    query_params_doc = {"expansion_search": "search queue length (usearch's ef)"}
    accurate_params = {
        "build": {"connectivity": 32, "expansion_add": 256},
        "query": {"expansion_search": 400},
    }

    def __init__(
        self,
        metric: str,
        dim: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        dtype: str = "f32",
    ) -> None:
        super().__init__(metric, dim)
        self._Index = _usearch_index()
        if dtype not in DTYPES:
            raise BenchError(
                f"usearch: build parameter dtype must be one of {', '.join(DTYPES)}, got {dtype!r}"
            )
        self.require_at_least("build", "connectivity", connectivity, 2)
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.dtype = "b1" if metric == "hamming" else dtype
        self.expansion_search = 64  # the library's default
        self.index: Any = None

    def build(self, data: np.ndarray) -> None:
        self.index = self._Index(
            ndim=self.dim, metric=_METRICS[self.metric], dtype=self.dtype,
            connectivity=self.connectivity, expansion_add=self.expansion_add,
            expansion_search=self.expansion_search,
        )
        start = 0
        for chunk in add_chunks(data):
            self.index.add(np.arange(start, start + len(chunk), dtype=np.uint64), chunk,
                           threads=self.threads)
            start += len(chunk)

    def set_query_params(self, *, expansion_search: int | None = None, **unknown: Any) -> None:
        if unknown:
            raise BenchError(
                f"usearch: unknown query parameter(s) {sorted(unknown)}; expected: expansion_search"
            )
        if expansion_search is not None:
            if expansion_search < 1:
                raise BenchError(
                    f"usearch: query parameter expansion_search must be >= 1, "
                    f"got {expansion_search}"
                )
            self.expansion_search = int(expansion_search)
            if self.index is not None:
                self.index.expansion_search = self.expansion_search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(queries)
        if self.index is None or len(self.index) == 0:
            return np.full((n, k), np.inf, np.float32), np.full((n, k), -1, np.int64)
        matches = self.index.search(queries, k, threads=self.threads)
        if hasattr(matches, "counts"):
            ids = matches.keys.astype(np.int64)
            dist = matches.distances.astype(np.float32)
            counts = np.asarray(matches.counts)
        else:  # one query row: usearch returns 1-D matches, truncated to those found
            found = len(matches.keys)
            ids = np.zeros((1, k), dtype=np.int64)
            dist = np.zeros((1, k), dtype=np.float32)
            ids[0, :found] = matches.keys
            dist[0, :found] = matches.distances
            counts = np.array([found])
        missing = np.arange(k)[None, :] >= counts[:, None]
        ids[missing] = -1
        dist[missing] = 0  # placeholder, replaced by +inf below (usearch leaves NaN there)
        if self.metric == "euclidean":
            dist = np.sqrt(np.maximum(dist, 0))
        elif self.metric == "ip":
            dist = dist - 1.0  # usearch's ip distance is 1 - <q, x>
        dist[missing] = np.inf
        return dist, ids

    def index_bytes(self) -> int | None:
        return None if self.index is None else int(self.index.serialized_length)
