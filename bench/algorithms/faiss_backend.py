"""Faiss float indexes from any ``index_factory`` string.

Query parameters (``nprobe``, ``efSearch``, ``k_factor``, ...) are applied
through ``faiss.ParameterSpace``, which reaches through composite indexes
(IVF inside a pre-transform, HNSW quantisers, refine wrappers) without a
rebuild, so one build serves a whole query sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend, add_chunks, training_sample
from bench.algorithms.range import check_radius, range_to_knn
from bench.core.errors import BenchError


@register("faiss")
class FaissBackend(Backend):
    metrics = ("euclidean", "angular", "ip", "l1", "jensen-shannon")
    open_query_params = True  # anything faiss.ParameterSpace understands
    query_params_doc = {
        "nprobe": "IVF lists visited per query",
        "efSearch": "HNSW search queue length",
        "k_factor": "refine: candidates re-ranked per result (IndexRefine)",
        "k_factor_rf": "the same through ParameterSpace's name for RFlat / Refine",
        "ht": "polysemous Hamming threshold",
        "radius": "range search (Flat, IVF, HNSW, ...; not NSG): the k closest within this "
                  "harness distance",
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
        device: str = "cpu",
        gpus: int | None = None,
        shard: bool = False,
    ) -> None:
        super().__init__(metric, dim)
        import faiss

        self.factory = factory
        self.train_size = train_size
        self.seed = seed
        faiss_metric = faiss_metric_of(faiss, metric)
        try:
            self.index = faiss.index_factory(dim, factory, faiss_metric)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else str(exc)
            raise BenchError(f"faiss: invalid index_factory string {factory!r}: {first}") from None
        self.exact = factory.strip() in ("Flat", "IDMap,Flat")
        self.device = device
        if device != "cpu":
            self.index = _to_gpus(faiss, self.index, device, gpus, shard)
        self._params = faiss.ParameterSpace()
        self._checked: np.ndarray | None = None  # queries already checked for JS zeros

    def set_threads(self, threads: int) -> None:
        import faiss

        super().set_threads(threads)
        faiss.omp_set_num_threads(threads)

    def build(self, data: np.ndarray) -> None:
        """Train on a sample, then add the (memory-mapped) data in chunks of about
        ``ADD_CHUNK_BYTES``: a float32 chunk is a view of the map, not a copy, so the
        library's own storage is the only full copy in memory."""
        import faiss

        if self.metric == "jensen-shannon":
            refuse_zero_components(data, "database")
        if not self.index.is_trained:
            train = training_sample(data, self.train_size, self.seed)
            self.index.train(np.ascontiguousarray(train, dtype=np.float32))
        _reserve_codes(faiss, self.index, len(data))
        for chunk in add_chunks(data):
            self.index.add(np.ascontiguousarray(chunk, dtype=np.float32))

    def set_query_params(self, **params: Any) -> None:
        import faiss

        radius = params.pop("radius", None)
        self._radius = None if radius is None else check_radius(radius, "faiss")
        if self._radius is not None and self.metric not in ("euclidean", "angular", "ip"):
            raise BenchError(f"faiss: radius search supports euclidean, angular and ip, "
                             f"not {self.metric}")
        for name, value in params.items():
            _check_query_value(name, value)
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
        return self.finish(self.search_raw(queries, k))

    def search_raw(self, queries: np.ndarray, k: int) -> Any:
        if self.metric == "jensen-shannon" and queries is not self._checked:
            # once per query array (the timed loop repeats the same one): noise next to JS
            refuse_zero_components(queries, "queries")
            self._checked = queries
        radius = getattr(self, "_radius", None)
        if radius is None:
            return self.index.search(queries, k)
        # Faiss keeps L2 results with d^2 < r^2, inner-product results with sim > r; one
        # float32 step past the bound makes it "within radius" (<=), as bruteforce has it
        if self.metric == "euclidean":
            threshold = np.nextafter(np.float32(radius * radius), np.float32(np.inf))
        else:
            bound = 1.0 - radius if self.metric == "angular" else -radius
            threshold = np.nextafter(np.float32(bound), np.float32(-np.inf))
        try:
            lims, values, ids = self.index.range_search(queries, float(threshold))
        except RuntimeError as exc:
            raise BenchError(f"faiss: {self.factory!r} has no range search: "
                             f"{str(exc).strip().splitlines()[-1]}") from None
        return ("range", k, lims, values, ids)

    def finish(self, raw: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(raw[0], str):  # ("range", k, lims, values, ids)
            _, k, lims, values, ids = raw
            return range_to_knn(lims, self._distance(values), ids, k)
        sims, ids = raw
        dist = self._distance(sims)
        dist[ids < 0] = np.inf
        return dist, ids

    def save(self, directory: Path) -> None:
        import faiss

        index = faiss.index_gpu_to_cpu(self.index) if self.device != "cpu" else self.index
        faiss.write_index(index, str(directory / "index.faiss"))

    def load(self, directory: Path) -> None:
        import faiss

        self.index = faiss.read_index(str(directory / "index.faiss"))

    def _distance(self, sims: np.ndarray) -> np.ndarray:
        """Faiss' output values in the harness convention (smaller is closer)."""
        if self.metric == "euclidean":
            return np.sqrt(np.maximum(sims, 0))
        if self.metric in ("l1", "jensen-shannon"):
            return np.array(sims, copy=True)  # already distances, in the harness convention
        if self.metric == "angular":
            return 1.0 - sims
        return -sims

    def index_bytes(self) -> int | None:
        import faiss

        index = faiss.index_gpu_to_cpu(self.index) if self.device != "cpu" else self.index
        return serialized_size(faiss, faiss.write_index, index)


def serialized_size(faiss: Any, write: Any, index: Any) -> int:
    """Bytes ``write`` (faiss.write_index / write_index_binary) produces, counted as they
    stream out: ``serialize_index`` builds the whole byte string in memory, a transient
    two to three times the index (a 512 MB Flat index peaked the worker at 1.66 GB)."""
    count = [0]

    def add(buffer: bytes) -> None:
        count[0] += len(buffer)

    writer = faiss.PyCallbackIOWriter(add)
    try:
        write(index, writer)
    finally:
        del writer
    return count[0]


def _reserve_codes(faiss: Any, index: Any, n: int) -> None:
    """Size a flat code array (Flat, SQ, PQ) for all ``n`` rows before chunked adds.

    Each ``add`` grows the library's vector; past its capacity it reallocates and copies,
    so for a moment the old and the new array are both resident (measured: a 512 MB Flat
    index peaked at 670-770 MB when added in chunks). Resizing to the final size and back
    to zero keeps the capacity, so every add then fills it in place."""
    try:
        flat = faiss.downcast_index(index)
    except Exception:  # pragma: no cover - an index type faiss cannot downcast
        return
    if isinstance(flat, faiss.IndexFlatCodes) and flat.ntotal == 0 and n > 0:
        flat.codes.resize(n * flat.code_size)
        flat.codes.resize(0)


def faiss_metric_of(faiss: Any, metric: str) -> int:
    """The Faiss metric constant of a canonical metric name (angular: inner product
    on the unit vectors the harness prepares)."""
    return {"euclidean": faiss.METRIC_L2, "angular": faiss.METRIC_INNER_PRODUCT,
            "ip": faiss.METRIC_INNER_PRODUCT, "l1": faiss.METRIC_L1,
            "jensen-shannon": faiss.METRIC_JensenShannon}[metric]


def refuse_zero_components(data: np.ndarray, what: str) -> None:
    """Faiss' Jensen-Shannon computes 0 * log(0) as NaN, and a NaN distance drops the
    row from every result (found by test: a query with one zero got no neighbours);
    the bruteforce backend treats 0 log 0 as 0 and serves such data."""
    for start in range(0, len(data), 65536):  # a memory map: never a full-size temporary
        zero = np.asarray(data[start : start + 65536]) == 0
        if not zero.any():
            continue
        row = start + int(np.nonzero(zero.any(axis=1))[0][0])
        raise BenchError(
            f"faiss: metric jensen-shannon: {what} row {row} has a zero component, which "
            "Faiss scores as NaN (0 log 0); use the bruteforce backend or features > 0"
        )


def _to_gpus(faiss: Any, index: Any, device: str, gpus: int | None, shard: bool) -> Any:
    """The index cloned onto GPUs: ``device: cuda`` (all GPUs, or ``gpus`` of them),
    replicated by default or split by rows with ``shard: true``; ``cuda:N`` one GPU.

    Refused in one line when the installed faiss has no GPU support (faiss-cpu, the
    default; the ``[gpu]`` extra documents faiss-gpu-cu12) or sees no GPU."""
    available = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device not in ("cuda", "auto") and not device.startswith("cuda:"):
        raise BenchError(f"faiss: device must be cpu, cuda, cuda:N or auto, got {device!r}")
    if available == 0:
        if device == "auto":
            return index
        raise BenchError(
            "faiss: device cuda needs a faiss build with GPU support that sees a GPU "
            "(pip install faiss-gpu-cu12 in place of faiss-cpu: the [gpu] extra); "
            f"this faiss {faiss.__version__} sees {available} GPUs"
        )
    options = faiss.GpuMultipleClonerOptions()
    options.shard = shard
    if device.startswith("cuda:"):
        gpu = int(device.split(":", 1)[1])
        if gpu >= available:
            raise BenchError(f"faiss: {device} requested but faiss sees {available} GPUs")
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    return faiss.index_cpu_to_all_gpus(index, co=options, ngpu=gpus or available)


#: search parameters that count something (lists probed, graph candidates): 0 or less,
#: or a fraction, is a typo that Faiss would silently clamp or cast
_COUNTS = ("nprobe", "efSearch", "quantizer_efSearch")


def _check_query_value(name: str, value: Any) -> None:
    """``efSearch: -1`` or ``nprobe: 1.5`` fails the run with its parameter named, rather
    than being recorded as an ok run of some other setting."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BenchError(f"faiss: query parameter {name}={value!r}: expected a number")
    if name in _COUNTS and (not isinstance(value, int) or value < 1):
        raise BenchError(f"faiss: query parameter {name}={value!r}: expected an integer >= 1")
    if value < 0:
        raise BenchError(f"faiss: query parameter {name}={value!r}: expected a value >= 0")
