"""Faiss float indexes from any ``index_factory`` string.

Query parameters (``nprobe``, ``efSearch``, ``k_factor``, ...) are applied
through ``faiss.ParameterSpace``, which reaches through composite indexes
(IVF inside a pre-transform, HNSW quantisers, refine wrappers) without a
rebuild, so one build serves a whole query sweep.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, training_sample
from bench.core.errors import BenchError


@register("faiss")
class FaissBackend(Backend):
    metrics = ("euclidean", "angular", "ip")
    open_query_params = True  # anything faiss.ParameterSpace understands
    query_params_doc = {
        "nprobe": "IVF lists visited per query",
        "efSearch": "HNSW search queue length",
        "k_factor": "refine: candidates re-ranked per result (IndexRefine)",
        "k_factor_rf": "the same through ParameterSpace's name for RFlat / Refine",
        "ht": "polysemous Hamming threshold",
    }
    accurate_params = {"build": {"factory": "Flat"}, "query": {}}

    def __init__(
        self,
        metric: str,
        dim: int,
        *,
        factory: str = "Flat",
        train_size: int | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(metric, dim)
        import faiss

        self.factory = factory
        self.train_size = train_size
        self.seed = seed
        faiss_metric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        try:
            self.index = faiss.index_factory(dim, factory, faiss_metric)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else str(exc)
            raise BenchError(f"faiss: invalid index_factory string {factory!r}: {first}") from None
        self.exact = factory.strip() in ("Flat", "IDMap,Flat")
        self._params = faiss.ParameterSpace()

    def set_threads(self, threads: int) -> None:
        import faiss

        super().set_threads(threads)
        faiss.omp_set_num_threads(threads)

    def build(self, data: np.ndarray) -> None:
        if not self.index.is_trained:
            train = training_sample(data, self.train_size, self.seed)
            self.index.train(np.ascontiguousarray(train, dtype=np.float32))
        chunk = 1 << 18
        for start in range(0, len(data), chunk):
            self.index.add(np.ascontiguousarray(data[start : start + chunk], dtype=np.float32))

    def set_query_params(self, **params: Any) -> None:
        import faiss

        for name, value in params.items():
            try:
                self._params.set_index_parameter(self.index, name, value)
            except RuntimeError as exc:
                # ParameterSpace does not reach every field (IndexRefine's k_factor):
                # fall back to a plain attribute of the concrete index class
                concrete = faiss.downcast_index(self.index)
                if hasattr(concrete, name):
                    setattr(concrete, name, type(getattr(concrete, name))(value))
                    continue
                raise BenchError(
                    f"faiss: query parameter {name}={value!r} does not apply to "
                    f"{self.factory!r}: {str(exc).strip().splitlines()[-1]}"
                ) from None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.finish(self.index.search(queries, k))

    def search_raw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)

    def finish(self, raw: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        sims, ids = raw
        if self.metric == "euclidean":
            dist = np.sqrt(np.maximum(sims, 0))
        elif self.metric == "angular":
            dist = 1.0 - sims
        else:
            dist = -sims
        dist[ids < 0] = np.inf
        return dist, ids

    def index_bytes(self) -> int | None:
        import faiss

        return int(faiss.serialize_index(self.index).nbytes)
