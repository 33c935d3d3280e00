"""One conformance suite that every registered search backend must pass.

Parametrised over ``bench.algorithms.registry``, so a new built-in module or a
plugin is covered without touching this file. A backend is skipped only when
its optional library is missing (MissingDependencyError), with that message.
Data and exact neighbours are generated here with plain numpy.
"""

from __future__ import annotations

import functools
import inspect
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.algorithms import registry
from bench.algorithms.base import Backend
from bench.core.distances import METRICS
from bench.core.errors import BenchError, MissingDependencyError
from bench.core.registry import Registry

K = 10
DIM = 32
HAMMING_BITS = 64
#: numba compiles PyNNDescent's kernels in every new process, ~40 s per metric
SLOW = {"pynndescent"}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] if name in SLOW else []


BACKENDS = [pytest.param(name, id=name, marks=_marks(name)) for name in registry.names()]
BACKEND_METRICS = [
    pytest.param(name, metric, id=f"{name}-{metric}", marks=_marks(name))
    for name, cls in registry.items()
    for metric in cls.metrics
]


# -- data -----------------------------------------------------------------------------
def clustered(n: int, n_queries: int, dim: int, n_clusters: int, seed: int) -> tuple[np.ndarray,
                                                                                      np.ndarray]:
    """A Gaussian mixture; database and queries drawn from the same mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_clusters, dim))
    labels = rng.integers(0, n_clusters, n + n_queries)
    x = (centres[labels] + rng.normal(0, 1, (n + n_queries, dim))).astype(np.float32)
    return x[:n], x[n:]


def planted_codes(n: int, n_queries: int, bits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed random codes in groups of near-duplicates (a few flipped bits each)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (n // 20, bits), dtype=np.uint8)

    def variants(count: int, max_flips: int) -> np.ndarray:
        out = centres[rng.integers(0, len(centres), count)].copy()
        for row in out:
            flip = rng.choice(bits, rng.integers(0, max_flips + 1), replace=False)
            row[flip] ^= 1
        return np.packbits(out, axis=1)

    return variants(n, 4), variants(n_queries, 3)


@functools.cache
def dataset(metric: str) -> tuple[np.ndarray, np.ndarray]:
    if metric == "hamming":
        return planted_codes(2000, 100, HAMMING_BITS, seed=1)
    data, queries = clustered(2000, 100, DIM, 20, seed=2)
    if metric == "angular":  # the harness normalises angular data before any backend sees it
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "jensen-shannon":  # positive rows scaled to sum 1, as the harness does
        data, queries = np.exp(data / 4), np.exp(queries / 4)
        data /= data.sum(axis=1, keepdims=True)
        queries /= queries.sum(axis=1, keepdims=True)
    return data, queries


def dim_of(metric: str) -> int:
    return HAMMING_BITS if metric == "hamming" else DIM


def exact_distances(data: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Plain float64 brute force, independent of every backend."""
    if metric == "hamming":
        a = np.unpackbits(queries, axis=1).astype(np.int64)
        b = np.unpackbits(data, axis=1).astype(np.int64)
        return (a[:, None, :] != b[None, :, :]).sum(-1).astype(np.float64)
    q, x = queries.astype(np.float64), data.astype(np.float64)
    if metric in ("l1", "jensen-shannon"):  # scipy: code independent of the harness
        from scipy.spatial.distance import cdist

        if metric == "l1":
            return cdist(q, x, "cityblock")
        return cdist(q, x, "jensenshannon") ** 2
    if metric == "euclidean":
        return np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    dots = q @ x.T
    return 1 - dots if metric == "angular" else -dots


def tie_aware_recall(full: np.ndarray, ids: np.ndarray, k: int) -> float:
    """A returned id counts when its exact distance is within the k-th exact distance
    (relative tolerance), so Hamming ties do not punish a correct answer."""
    kth = np.sort(full, axis=1)[:, k - 1]
    tol = 1e-5 * np.abs(full).max(axis=1)
    hits = 0
    for row, (dist_row, id_row) in enumerate(zip(full, ids, strict=True)):
        valid = np.unique(id_row[id_row >= 0])
        hits += int((dist_row[valid] <= kth[row] + tol[row]).sum())
    return hits / (k * len(ids))


# -- helpers --------------------------------------------------------------------------
def make(name: str, metric: str, build: dict | None = None) -> Backend:
    cls = registry.get(name)
    params = dict(cls.accurate_params["build"]) if build is None else build
    try:
        backend = cls(metric, dim_of(metric), **params)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    backend.set_threads(1)
    return backend


def built(name: str, metric: str, data: np.ndarray) -> Backend:
    backend = make(name, metric)
    backend.build(data)
    backend.set_query_params(**registry.get(name).accurate_params["query"])
    return backend


def check_result(dist: np.ndarray, ids: np.ndarray, n_queries: int, k: int, n: int) -> None:
    assert ids.shape == (n_queries, k) and dist.shape == (n_queries, k)
    assert ids.dtype == np.int64
    assert np.issubdtype(dist.dtype, np.floating)
    assert ((ids >= -1) & (ids < n)).all()
    for d_row, i_row in zip(dist, ids, strict=True):
        valid = i_row >= 0
        n_valid = int(valid.sum())
        assert valid[:n_valid].all(), f"-1 padding must come last: {i_row}"
        assert len(np.unique(i_row[valid])) == n_valid, f"duplicate ids: {i_row}"
        finite = d_row[:n_valid]
        assert (np.diff(finite) >= -1e-5 * (1 + np.abs(finite[1:]))).all(), f"unsorted: {d_row}"


# -- the suite ------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_declarations(name: str) -> None:
    cls = registry.get(name)
    assert cls.registered_name == name
    assert cls.metrics and set(cls.metrics) <= set(METRICS)
    params = list(inspect.signature(cls.__init__).parameters.values())[3:]  # self, metric, dim
    for p in params:  # `bench list algorithms` reads build parameters from the signature
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{p.name} must be keyword-only"
        assert p.default is not inspect.Parameter.empty, f"{p.name} needs a default"
        assert p.annotation is not inspect.Parameter.empty, f"{p.name} needs a type hint"
    assert set(cls.accurate_params["build"]) <= {p.name for p in params}
    if not getattr(cls, "open_query_params", False):
        assert set(cls.accurate_params["query"]) <= set(cls.query_params_doc)


@pytest.mark.parametrize("name", BACKENDS)
def test_refuses_undeclared_metrics(name: str) -> None:
    cls = registry.get(name)
    for metric in METRICS:
        if metric in cls.metrics:
            continue
        with pytest.raises(BenchError, match=metric):
            cls(metric, dim_of(metric))


@pytest.mark.parametrize("name", BACKENDS)
def test_refuses_unknown_query_parameter(name: str) -> None:
    metric = registry.get(name).metrics[0]
    data, _ = dataset(metric)
    backend = make(name, metric)
    backend.build(data[:200])
    with pytest.raises(BenchError):
        backend.set_query_params(no_such_parameter=1)


@pytest.mark.parametrize(("name", "metric"), BACKEND_METRICS)
def test_accurate_setting(name: str, metric: str) -> None:
    """Shapes, dtypes, order, recall >= 0.9, batch == single-query, reproducible builds."""
    data, queries = dataset(metric)
    backend = built(name, metric, data)
    dist, ids = backend.search(queries, K)
    check_result(dist, ids, len(queries), K, len(data))
    recall = tie_aware_recall(exact_distances(data, queries, metric), ids, K)
    assert recall >= 0.9, f"{name}/{metric}: recall {recall:.3f} at its most accurate setting"
    if getattr(backend, "exact", False):
        assert recall == 1.0
    for i in range(3):  # single-query mode calls search with one row
        d1, i1 = backend.search(queries[i : i + 1], K)
        check_result(d1, i1, 1, K, len(data))
        np.testing.assert_allclose(d1[0], dist[i], rtol=1e-5, atol=1e-6)
        inside = dist[i] < dist[i, -1]  # ties at equal distance may come in any order
        assert set(i1[0][inside]) == set(ids[i][inside])
    # what the harness times (search_raw) and converts untimed (finish) is search itself
    d_raw, i_raw = backend.finish(backend.search_raw(queries, K))
    np.testing.assert_array_equal(i_raw, ids)
    np.testing.assert_allclose(d_raw, dist, rtol=1e-6)
    extra = backend.extra_metrics()
    assert all(isinstance(v, float | int) for v in extra.values())
    size = backend.index_bytes()
    assert size is None or size > 0
    backend.close()
    if getattr(registry.get(name), "deterministic", True):
        again = built(name, metric, data)
        np.testing.assert_array_equal(again.search(queries, K)[1], ids)
        again.close()


@pytest.mark.parametrize(("name", "metric"), BACKEND_METRICS)
def test_pads_when_fewer_than_k(name: str, metric: str) -> None:
    data, queries = dataset(metric)
    small = data[:5]
    backend = built(name, metric, small)
    dist, ids = backend.search(queries[:4], 8)
    check_result(dist, ids, 4, 8, len(small))
    assert (ids[:, 5:] == -1).all()
    assert np.isinf(dist[:, 5:]).all(), "padded distances must be +inf"
    for row in ids:  # at the accurate setting every one of the 5 points comes back
        assert sorted(row[:5]) == [0, 1, 2, 3, 4]
    backend.close()


# -- plugins through the entry point group ---------------------------------------------
PLUGIN = '''
import numpy as np
from bench.algorithms.base import Backend


class DemoExact(Backend):
    """A third-party backend: exact L2 search in a few lines."""

    metrics = ("euclidean",)
    exact = True

    def __init__(self, metric: str, dim: int, *, scale: float = 1.0) -> None:
        super().__init__(metric, dim)
        self.scale = scale

    def build(self, data):
        self.data = data

    def search(self, queries, k):
        d = np.sqrt(((queries[:, None, :] - self.data[None, :, :]) ** 2).sum(-1))
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, ids, 1).astype(np.float32), ids.astype(np.int64)
'''


def install_plugin(root: Path, entry: str) -> None:
    """A distribution on sys.path: a module plus a .dist-info with entry_points.txt."""
    (root / "featbench_demo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "featbench_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: featbench-demo-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bench.algorithms]\n{entry}\n")


def test_plugin_registers_through_entry_point(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, "demo-exact = featbench_demo_plugin:DemoExact")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh: Registry[Backend] = Registry("algorithm", "bench.algorithms", "bench.algorithms")
    assert "demo-exact" in fresh.names()
    cls = fresh.get("demo-exact")
    assert cls.registered_name == "demo-exact"
    data, queries = dataset("euclidean")
    backend = cls("euclidean", DIM, scale=2.0)
    backend.build(data)
    dist, ids = backend.search(queries, K)
    check_result(dist, ids, len(queries), K, len(data))
    assert tie_aware_recall(exact_distances(data, queries, "euclidean"), ids, K) == 1.0
    with pytest.raises(BenchError, match="angular"):
        cls("angular", DIM)


def test_broken_plugin_fails_with_its_name(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, "demo-broken = featbench_no_such_module:Nothing")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh: Registry[Backend] = Registry("algorithm", "bench.algorithms", "bench.algorithms")
    with pytest.raises(BenchError, match="demo-broken"):
        fresh.get("demo-broken")


@pytest.mark.parametrize("name", BACKENDS)
def test_runs_with_two_threads(name: str) -> None:
    """Thread pools, OpenMP and num_threads paths give valid, accurate results too."""
    metric = registry.get(name).metrics[0]
    data, queries = dataset(metric)
    backend = make(name, metric)
    backend.set_threads(2)
    backend.build(data)
    backend.set_query_params(**registry.get(name).accurate_params["query"])
    dist, ids = backend.search(queries, K)
    check_result(dist, ids, len(queries), K, len(data))
    assert tie_aware_recall(exact_distances(data, queries, metric), ids, K) >= 0.9
    backend.close()


# -- backend specifics that the generic suite cannot see ------------------------------
def test_annoy_on_disk_build_reports_the_file_and_cleans_up() -> None:
    data, queries = dataset("euclidean")
    on_disk = make("annoy", "euclidean", {"n_trees": 20, "on_disk": True})
    on_disk.build(data)
    path = Path(on_disk._path)
    assert on_disk.index_bytes() == path.stat().st_size > data.nbytes
    in_memory = make("annoy", "euclidean", {"n_trees": 20})
    in_memory.build(data)
    before = in_memory.search(queries, K)[1]
    assert in_memory.index_bytes() == on_disk.index_bytes()  # same seed, same trees
    # after the size is taken the index is served from a memory map: same answers
    np.testing.assert_array_equal(in_memory.search(queries, K)[1], before)
    np.testing.assert_array_equal(on_disk.search(queries, K)[1], before)
    on_disk.close()
    in_memory.close()
    assert not path.exists()


def test_faiss_binary_indexes_and_their_query_parameters() -> None:
    data, queries = dataset("hamming")
    full = exact_distances(data, queries, "hamming")
    flat = make("faiss-binary", "hamming", {"index_binary_factory": "BFlat"})
    flat.build(data)
    dist, ids = flat.search(queries, K)
    np.testing.assert_array_equal(dist, np.sort(full, axis=1)[:, :K])
    with pytest.raises(BenchError, match="nprobe"):
        flat.set_query_params(nprobe=4)
    ivf = make("faiss-binary", "hamming", {"index_binary_factory": "BIVF32", "seed": 3})
    ivf.build(data)
    recalls = []
    for nprobe in (1, 32):
        ivf.set_query_params(nprobe=nprobe)
        recalls.append(tie_aware_recall(full, ivf.search(queries, K)[1], K))
    assert recalls[0] < recalls[1] == 1.0
    hnsw = make("faiss-binary", "hamming", {"index_binary_factory": "BHNSW16"})
    hnsw.build(data)
    hnsw.set_query_params(efSearch=128)
    assert tie_aware_recall(full, hnsw.search(queries, K)[1], K) >= 0.95
    with pytest.raises(BenchError, match="efSearch"):
        ivf.set_query_params(efSearch=16)


@pytest.mark.parametrize(
    ("build", "dim", "field"),
    [({"index_binary_factory": "BNoSuchIndex"}, 64, "index_binary_factory"),
     ({}, 60, "multiple of 8")],
)
def test_faiss_binary_refuses_bad_build(build: dict, dim: int, field: str) -> None:
    with pytest.raises(BenchError, match=field):
        registry.get("faiss-binary")("hamming", dim, **build)


def test_bruteforce_agrees_with_faiss_flat() -> None:
    for metric in ("euclidean", "angular", "ip"):
        data, queries = dataset(metric)
        ours, theirs = make("bruteforce", metric), make("faiss", metric, {"factory": "Flat"})
        ours.build(data)
        theirs.build(data)
        (d1, i1), (d2, i2) = ours.search(queries, K), theirs.search(queries, K)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("name", "package"), [("usearch", "usearch"),
                                               ("pynndescent", "pynndescent")])
def test_optional_backend_without_its_library(name: str, package: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for module in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(MissingDependencyError, match=rf"featbench\[{package}\]"):
        registry.get(name)("euclidean", DIM)


def test_training_sample_is_seeded_ordered_and_bounded() -> None:
    from bench.algorithms.base import training_sample

    data = np.arange(100, dtype=np.float32).reshape(50, 2)
    assert training_sample(data, None, 1) is data and training_sample(data, 50, 1) is data
    a, b = training_sample(data, 10, 7), training_sample(data, 10, 7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 2) and a.flags.c_contiguous
    assert (np.diff(a[:, 0]) > 0).all()  # data order kept
    assert not np.array_equal(a, training_sample(data, 10, 8))


def test_faiss_train_size_trains_on_a_seeded_subset() -> None:
    data, queries = clustered(2000, 20, DIM, 8, seed=3)
    ids = []
    for _ in range(2):
        backend = make("faiss", "euclidean", {"factory": "IVF16,Flat", "train_size": 500})
        backend.build(data)
        backend.set_query_params(nprobe=16)
        ids.append(backend.search(queries, K)[1])
    np.testing.assert_array_equal(ids[0], ids[1])
    recall = tie_aware_recall(exact_distances(data, queries, "euclidean"), ids[0], K)
    assert recall == 1.0  # all 16 lists probed: exact whatever the training subset
