"""Annoy: forests of random-projection trees (Spotify).

Annoy has no bulk insert, so build feeds rows one at a time (from a list: the
C extension reads list items much faster than numpy scalars). Queries release
the GIL, so a batch is spread over a thread pool when ``threads > 1``.

Annoy's own distances are converted to the harness convention: angular
sqrt(2 - 2 cos) becomes 1 - cos, dot similarities are negated.

Index size: with ``on_disk: true`` the index is built straight into a temporary
file and its size is reported. An in-memory index is saved to a temporary file
the first time its size is asked for (the harness asks once, after measuring
build time and memory); Annoy then serves it from a memory map of that file,
loaded with prefault, which the file's deletion does not affect.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, add_chunks
from bench.core.errors import BenchError

#: Annoy calls L1 "manhattan"; its distances are already L1
_METRICS = {"euclidean": "euclidean", "angular": "angular", "ip": "dot", "l1": "manhattan"}


@register("annoy")
class AnnoyBackend(Backend):
    metrics = ("euclidean", "angular", "ip", "l1")
    query_params_doc = {
        "search_k": "tree nodes inspected per query; -1 = n_trees * k (the library default)"
    }
    accurate_params = {"build": {"n_trees": 50}, "query": {"search_k": 50_000}}

    def __init__(
        self, metric: str, dim: int, *, n_trees: int = 10, on_disk: bool = False, seed: int = 42
    ) -> None:
        super().__init__(metric, dim)
        self.require_at_least("build", "n_trees", n_trees, 1)
        self.n_trees = n_trees
        self.on_disk = on_disk
        self.seed = seed
        self.search_k = -1
        self.index: Any = None
        self._path: str | None = None
        self._size: int | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _temp_path(self) -> str:
        fd, path = tempfile.mkstemp(prefix="featbench-annoy-", suffix=".ann")
        os.close(fd)
        return path

    def build(self, data: np.ndarray) -> None:
        from annoy import AnnoyIndex

        self.index = AnnoyIndex(self.dim, _METRICS[self.metric])
        self.index.set_seed(self.seed)
        if self.on_disk:
            self._path = self._temp_path()
            self.index.on_disk_build(self._path)
        add = self.index.add_item
        i = 0
        for chunk in add_chunks(data):  # a Python list of the whole database is ~8x its size
            for row in chunk.tolist():
                add(i, row)
                i += 1
        self.index.build(self.n_trees, n_jobs=self.threads)
        if self._path is not None:
            self._size = os.path.getsize(self._path)

    def save(self, directory: Path) -> None:
        self.index.save(str(directory / "index.ann"), prefault=False)

    def load(self, directory: Path) -> None:
        from annoy import AnnoyIndex

        self.index = AnnoyIndex(self.dim, _METRICS[self.metric])
        self.index.load(str(directory / "index.ann"), prefault=True)

    def set_query_params(self, *, search_k: int | None = None, **unknown: Any) -> None:
        if unknown:
            raise BenchError(
                f"annoy: unknown query parameter(s) {sorted(unknown)}; expected: search_k"
            )
        if search_k is not None:
            if search_k < 1 and search_k != -1:
                raise BenchError(
                    f"annoy: query parameter search_k must be >= 1 or -1, got {search_k}"
                )
            self.search_k = int(search_k)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(queries)
        rows = queries.tolist()
        query = self.index.get_nns_by_vector
        search_k = self.search_k
        if self.threads > 1 and n > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads)
            results = list(self._pool.map(lambda r: query(r, k, search_k, True), rows))
        else:
            results = [query(r, k, search_k, True) for r in rows]
        if all(len(ids) == k for ids, _ in results):  # the usual case: no padding needed
            out_i = np.array([ids for ids, _ in results], dtype=np.int64).reshape(n, k)
            out_d = np.array([dist for _, dist in results], dtype=np.float32).reshape(n, k)
        else:
            out_i = np.full((n, k), -1, dtype=np.int64)
            out_d = np.full((n, k), np.inf, dtype=np.float32)
            for i, (ids, dist) in enumerate(results):
                out_i[i, : len(ids)] = ids
                out_d[i, : len(dist)] = dist
        if self.metric == "angular":
            np.multiply(out_d, out_d / 2, out=out_d)  # sqrt(2 - 2 cos) -> 1 - cos
        elif self.metric == "ip":
            np.negative(out_d, out=out_d)
            out_d[out_i < 0] = np.inf
        return out_d, out_i

    def index_bytes(self) -> int | None:
        if self.index is None:
            return None
        if self._size is None:
            path = self._temp_path()
            try:
                self.index.save(path, prefault=True)
                self._size = os.path.getsize(path)
            finally:
                os.unlink(path)
        return self._size

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self.index is not None:
            self.index.unload()
        if self._path is not None and os.path.exists(self._path):
            os.unlink(self._path)
            self._path = None
