"""Faiss binary indexes (Hamming distance) from ``index_binary_factory`` strings.

Perceptual hashes arrive packed, 8 bits per byte, most significant bit first:
exactly the layout Faiss binary indexes read, so ``dim`` (bits) must be a
multiple of 8. Typical strings: ``BFlat`` (exact), ``BIVF256`` (query parameter
``nprobe``), ``BHNSW32`` (``efSearch``), ``BIVF1024_HNSW32`` (both).

Binary indexes are outside ``faiss.ParameterSpace``, so query parameters are
set on the downcast index (or its quantiser) directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, training_sample
from bench.algorithms.range import check_radius, range_to_knn
from bench.core.errors import BenchError


@register("faiss-binary")
class FaissBinaryBackend(Backend):
    metrics = ("hamming",)
    query_params_doc = {
        "nprobe": "IVF lists visited per query (BIVF indexes)",
        "efSearch": "HNSW search queue length (BHNSW indexes or an HNSW IVF quantiser)",
        "radius": "range search (BFlat, BIVF): the k closest within this many bits",
    }
    accurate_params = {"build": {"index_binary_factory": "BFlat"}, "query": {}}

    def __init__(
        self,
        metric: str,
        dim: int,
        *,
        index_binary_factory: str = "BFlat",
        train_size: int | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(metric, dim)
        import faiss

        if dim % 8:
            raise BenchError(
                f"faiss-binary: the code length must be a multiple of 8 bits, got {dim}"
            )
        self.factory = index_binary_factory
        self.train_size = train_size
        self.seed = seed
        try:
            index = faiss.index_binary_factory(dim, index_binary_factory)
        except RuntimeError as exc:
            raise BenchError(
                f"faiss-binary: invalid index_binary_factory string {index_binary_factory!r}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        self._owner = index  # the downcast proxy does not own the C++ object: keep this alive
        self.index: Any = faiss.downcast_IndexBinary(index)
        self.exact = isinstance(self.index, faiss.IndexBinaryFlat)
        if hasattr(self.index, "cp"):
            self.index.cp.seed = seed  # IVF k-means: deterministic for a fixed seed

    def set_threads(self, threads: int) -> None:
        import faiss

        super().set_threads(threads)
        faiss.omp_set_num_threads(threads)

    def build(self, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data, dtype=np.uint8)
        if not self.index.is_trained:
            train = training_sample(data, self.train_size, self.seed)
            self.index.train(train)
        self.index.add(data)

    def _hnsw(self) -> Any:
        import faiss

        if hasattr(self.index, "hnsw"):
            return self.index.hnsw
        quantizer = getattr(self.index, "quantizer", None)
        if quantizer is not None:
            quantizer = faiss.downcast_IndexBinary(quantizer)
            if hasattr(quantizer, "hnsw"):
                return quantizer.hnsw
        return None

    def set_query_params(
        self, *, nprobe: int | None = None, efSearch: int | None = None, radius: Any = None,
        **unknown: Any,
    ) -> None:
        self._radius = None if radius is None else check_radius(radius, "faiss-binary")
        if unknown:
            raise BenchError(
                f"faiss-binary: unknown query parameter(s) {sorted(unknown)}; "
                f"expected: {', '.join(self.query_params_doc)}"
            )
        if nprobe is not None:
            if not hasattr(self.index, "nprobe"):
                raise BenchError(
                    f"faiss-binary: query parameter nprobe does not apply to {self.factory!r}"
                )
            self.index.nprobe = int(nprobe)
        if efSearch is not None:
            hnsw = self._hnsw()
            if hnsw is None:
                raise BenchError(
                    f"faiss-binary: query parameter efSearch does not apply to {self.factory!r}"
                )
            hnsw.efSearch = int(efSearch)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        radius = getattr(self, "_radius", None)
        if radius is not None:
            # Faiss keeps codes at distance < radius: floor(r) + 1 keeps those <= r
            try:
                lims, d, i = self.index.range_search(queries, int(np.floor(radius)) + 1)
            except RuntimeError as exc:
                raise BenchError(f"faiss-binary: {self.factory!r} has no range search (BFlat "
                                 f"and BIVF do): {str(exc).strip().splitlines()[-1]}") from None
            return range_to_knn(lims, d.astype(np.float32), i, k)
        dist, ids = self.index.search(queries, k)
        dist = dist.astype(np.float32)
        dist[ids < 0] = np.inf
        return dist, ids

    def index_bytes(self) -> int | None:
        import faiss

        from bench.algorithms.faiss_backend import serialized_size

        return serialized_size(faiss, faiss.write_index_binary, self.index)
