"""The search backend contract.

A backend wraps one library. Build parameters go to the constructor, query
parameters to ``set_query_params``; the harness, not the backend, does timing,
memory, recall and error handling, so a backend stays a thin adapter that is
easy to review against the library's own documentation.

Data conventions (the harness guarantees them before calling a backend):
- float metrics get C-contiguous float32 arrays; ``angular`` data is already
  L2-normalised, so inner product on it equals cosine similarity;
- ``build`` gets the database as a read-only memory map of the prepared cache file
  (``np.memmap``), not a private copy: add it to the library in chunks
  (``add_chunks``); a library that insists on one contiguous array in memory makes
  that copy itself, and it is the only one (it counts as index memory, honestly);
- ``hamming`` gets packed uint8 codes of shape (n, dim // 8), MSB first;
  ``dim`` is then the number of bits.
- ``search`` returns (distances, ids), both of shape (n_queries, k); ids are
  int64 row numbers into the database, padded with -1 when fewer than k results
  exist. Distances are informational (the harness recomputes exact distances of
  the returned ids for recall), but must be sorted ascending (most similar first).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.core.errors import BenchError


class Backend(ABC):
    #: canonical metric names this backend accepts (see bench.core.distances)
    metrics: ClassVar[tuple[str, ...]] = ()
    #: True for exact search: the harness checks it scores recall 1.0 before timing
    exact: ClassVar[bool] = False
    #: documented query parameters, name -> description (for `bench list algorithms`)
    query_params_doc: ClassVar[dict[str, str]] = {}
    #: the most accurate documented setting, used by the conformance suite:
    #: {"build": {...}, "query": {...}}; recall must reach 0.9 there on clustered data
    accurate_params: ClassVar[dict[str, dict[str, Any]]] = {"build": {}, "query": {}}
    registered_name: ClassVar[str] = ""

    def __init__(self, metric: str, dim: int, **build_params: Any) -> None:
        if metric not in self.metrics:
            raise BenchError(
                f"{type(self).registered_name or type(self).__name__} does not support metric "
                f"{metric!r}; supported: {', '.join(self.metrics)}"
            )
        self.metric = metric
        self.dim = dim
        self.threads = 1

    def require_at_least(self, kind: str, name: str, value: float, minimum: float) -> None:
        """One wording for every backend's range check of a build or query parameter."""
        if value < minimum:
            raise BenchError(
                f"{type(self).registered_name or type(self).__name__}: {kind} parameter "
                f"{name} must be >= {minimum}, got {value}"
            )

    def set_threads(self, threads: int) -> None:
        """Called before build with the build threads, and again after the build with
        the query threads (a backend reads ``self.threads`` when it runs)."""
        self.threads = threads

    @abstractmethod
    def build(self, data: np.ndarray) -> None: ...

    def set_query_params(self, **params: Any) -> None:
        if params:
            raise BenchError(
                f"{type(self).registered_name} takes no query parameters, got {sorted(params)}"
            )

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def search_raw(self, queries: np.ndarray, k: int) -> Any:
        """What the harness times. A backend whose ``search`` is the library call plus a
        conversion of its output (squared L2 to L2, similarity to distance) returns the
        library's output here and converts it in ``finish``, which the harness runs
        outside the timed region: the QPS is then the library's, not our bookkeeping's
        (a few numpy calls cost ~10% of a 30-microsecond single query).
        ``finish(search_raw(q, k))`` must equal ``search(q, k)``."""
        return self.search(queries, k)

    def finish(self, raw: Any) -> tuple[np.ndarray, np.ndarray]:
        """``search_raw``'s output as ``(distances, ids)``; not timed."""
        return raw

    def index_bytes(self) -> int | None:
        """The backend's own estimate of its index size (e.g. serialized size)."""
        return None

    def save(self, directory: Path) -> None:
        """Write the built index into ``directory`` so ``load`` can restore it in another
        process (instruction counting runs only the searches, on the saved index)."""
        raise BenchError(f"{type(self).registered_name} cannot save its index, so "
                         "`counter: instructions` does not apply to it (supported: faiss, "
                         "hnswlib, annoy, bruteforce)")

    def load(self, directory: Path) -> None:
        """Restore what ``save`` wrote, instead of ``build``, on a backend constructed
        with the same build parameters."""
        raise BenchError(f"{type(self).registered_name} cannot load a saved index")

    def extra_metrics(self) -> dict[str, float]:
        """Backend-specific figures of the last search, e.g. candidates examined per query."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Release resources (temporary files, threads)."""


#: bytes of data handed to a library per ``add`` call (a view of the memory map when the
#: data is float32 already, so a chunk costs no memory of its own)
ADD_CHUNK_BYTES = 64 << 20


def add_chunks(data: np.ndarray, chunk_bytes: int = ADD_CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``data`` of about ``chunk_bytes`` each (views, not copies:
    slices of a memory map stay memory maps)."""
    row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize)
    rows = max(1, chunk_bytes // row_bytes)
    for start in range(0, len(data), rows):
        yield data[start : start + rows]


def training_sample(data: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """The rows an index is trained or a clustering fitted on: a seeded subset in data
    order (all rows when ``size`` is None or not smaller), so a seed fixes the build."""
    if size is None or size >= len(data):
        return data
    rows = np.sort(np.random.default_rng(seed).choice(len(data), size, replace=False))
    return np.ascontiguousarray(data[rows])


def pad_results(
    distances: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad (n, m) results with m < k to (n, k): ids -1, distances +inf."""
    n, m = ids.shape
    if m >= k:
        return distances[:, :k], ids[:, :k]
    out_d = np.full((n, k), np.inf, dtype=np.float32)
    out_i = np.full((n, k), -1, dtype=np.int64)
    out_d[:, :m] = distances
    out_i[:, :m] = ids
    return out_d, out_i
