"""hnswlib: the reference HNSW implementation.

``angular`` uses hnswlib's ``ip`` space: the harness has already normalised the
vectors, so 1 - inner product is the cosine distance, and hnswlib's ``cosine``
space would only normalise every query a second time. hnswlib has no L1 or
Jensen-Shannon space, so those metrics are refused when the experiment loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, add_chunks, pad_results
from bench.core.errors import BenchError

_SPACES = {"euclidean": "l2", "angular": "ip", "ip": "ip"}


@register("hnswlib")
class HnswlibBackend(Backend):
    metrics = ("euclidean", "angular", "ip")
    query_params_doc = {"ef": "size of the dynamic candidate list (hnswlib uses max(ef, k))"}
    accurate_params = {"build": {"M": 32, "ef_construction": 400}, "query": {"ef": 400}}

    def __init__(
        self, metric: str, dim: int, *, M: int = 16, ef_construction: int = 200, seed: int = 42
    ) -> None:
        super().__init__(metric, dim)
        self.require_at_least("build", "M", M, 2)
        self.require_at_least("build", "ef_construction", ef_construction, 1)
        self.M = M
        self.ef_construction = ef_construction
        self.seed = seed
        self.ef = 10  # the library's default
        self.index: Any = None
        self._count = 0

    def build(self, data: np.ndarray) -> None:
        import hnswlib

        n = len(data)
        self.index = hnswlib.Index(space=_SPACES[self.metric], dim=self.dim)
        self.index.init_index(
            max_elements=max(n, 1), ef_construction=self.ef_construction, M=self.M,
            random_seed=self.seed,
        )
        start = 0
        for chunk in add_chunks(data):
            self.index.add_items(chunk, np.arange(start, start + len(chunk)),
                                 num_threads=self.threads)
            start += len(chunk)
        self._count = n
        self.index.set_ef(self.ef)

    def save(self, directory: Path) -> None:
        self.index.save_index(str(directory / "index.hnsw"))
        (directory / "count.txt").write_text(str(self._count))

    def load(self, directory: Path) -> None:
        import hnswlib

        self._count = int((directory / "count.txt").read_text())
        self.index = hnswlib.Index(space=_SPACES[self.metric], dim=self.dim)
        self.index.load_index(str(directory / "index.hnsw"), max_elements=max(self._count, 1))
        self.index.set_ef(self.ef)

    def set_query_params(self, *, ef: int | None = None, **unknown: Any) -> None:
        if unknown:
            raise BenchError(
                f"hnswlib: unknown query parameter(s) {sorted(unknown)}; expected: ef"
            )
        if ef is not None:
            self.require_at_least("query", "ef", ef, 1)
            self.ef = int(ef)
            if self.index is not None:
                self.index.set_ef(self.ef)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kk = min(k, self._count)
        if kk == 0:
            return pad_results(
                np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64), k
            )
        try:
            # positional: pybind11 parses keywords measurably slower on microsecond queries
            labels, dist = self.index.knn_query(queries, kk, self.threads)
        except RuntimeError:
            # a query reached fewer than kk points (tiny ef on a sparse graph)
            dist, labels = self._search_rows(queries, kk)
        ids = labels.view(np.int64)  # labels < n: reinterpreting uint64 needs no copy
        if self.metric == "euclidean":
            np.sqrt(dist, out=dist)  # hnswlib returns squared L2 in a fresh array
        elif self.metric == "ip":
            dist -= 1.0  # hnswlib's ip distance is 1 - <q, x>
        if kk < k:
            return pad_results(dist, ids, k)
        return dist, ids

    def _search_rows(self, queries: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """Row by row, shrinking k for the rows that cannot fill it, then padded."""
        dist = np.full((len(queries), kk), np.inf, dtype=np.float32)
        labels = np.full((len(queries), kk), -1, dtype=np.int64)
        for i in range(len(queries)):
            for j in range(kk, 0, -1):
                try:
                    lab, d = self.index.knn_query(queries[i : i + 1], k=j, num_threads=1)
                except RuntimeError:
                    continue
                labels[i, :j] = lab[0]
                dist[i, :j] = d[0]
                break
        return dist, labels

    def index_bytes(self) -> int | None:
        return None if self.index is None else int(self.index.index_file_size())
