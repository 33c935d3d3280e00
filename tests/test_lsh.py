"""Our sign-random-projection LSH: bucket lookup, multi-probe, re-ranking, fallback."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

import bench.algorithms.lsh as lsh_module
from bench.algorithms import registry
from bench.algorithms._numpy_knn import gather_ranges
from bench.algorithms.lsh import LSHBackend, probe_masks
from bench.core.errors import BenchError


def clustered(n: int = 3000, n_queries: int = 200, dim: int = 24, offset: float = 0.0,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (15, dim)) + offset
    labels = rng.integers(0, 15, n + n_queries)
    x = (centres[labels] + rng.normal(0, 1, (n + n_queries, dim))).astype(np.float32)
    return x[:n], x[n:]


def exact_ids(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = ((queries[:, None, :].astype(np.float64) - data[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / len(t)
                          for f, t in zip(found, truth, strict=True)]))


def lsh(metric: str = "euclidean", dim: int = 24, **build) -> LSHBackend:
    return LSHBackend(metric, dim, **build)


def test_probe_masks_cover_the_hamming_ball() -> None:
    masks = probe_masks(10, 2)
    assert masks[0] == 0
    assert len(masks) == len(set(masks.tolist())) == 1 + comb(10, 1) + comb(10, 2)
    assert max(bin(m).count("1") for m in masks.tolist()) == 2


def test_gather_ranges_matches_a_loop() -> None:
    starts = np.array([5, 0, 9, 3])
    counts = np.array([2, 0, 3, 1])
    expected = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts, strict=True)])
    np.testing.assert_array_equal(gather_ranges(starts, counts), expected)


def test_candidates_are_exactly_the_shared_buckets() -> None:
    """The vectorised lookup must find the same candidates as a per-item reference."""
    data, queries = clustered(n=800, n_queries=30)
    backend = lsh(n_bits=6, n_tables=3, seed=3)
    backend.build(data)
    backend.set_query_params(probe_radius=1)
    data_keys, query_keys = backend._keys(data), backend._keys(queries)
    for i in range(len(queries)):
        expected = {
            j for j in range(len(data)) for t in range(3)
            if bin(int(data_keys[j, t]) ^ int(query_keys[i, t])).count("1") <= 1
        }
        backend.set_query_params()  # resets the per-query counters
        backend.search(queries[i : i + 1], 5)
        assert backend.extra_metrics()["candidates_per_query"] == len(expected)


def test_more_probes_more_tables_more_recall() -> None:
    data, queries = clustered()
    truth = exact_ids(data, queries, 10)
    results = {}
    for n_tables, radius in [(2, 0), (2, 1), (8, 1)]:
        backend = lsh(n_bits=14, n_tables=n_tables, seed=1)
        backend.build(data)
        backend.set_query_params(probe_radius=radius, fallback="pad")
        ids = backend.search(queries, 10)[1]
        results[(n_tables, radius)] = (recall(ids, truth),
                                       backend.extra_metrics()["candidates_per_query"])
    (r0, c0), (r1, c1), (r2, c2) = results.values()
    assert c0 < c1 < c2 < len(data)
    assert r0 <= r1 <= r2
    assert r2 >= 0.9


def test_probing_every_bucket_is_exact() -> None:
    """With all 2**n_bits buckets probed, every row is a candidate: re-ranking alone decides."""
    data, queries = clustered(n=1000, n_queries=50)
    backend = lsh(n_bits=4, n_tables=1)
    backend.build(data)
    backend.set_query_params(probe_radius=4)
    dist, ids = backend.search(queries, 10)
    np.testing.assert_array_equal(ids, exact_ids(data, queries, 10))
    ref = np.sqrt(((queries[:, None, :] - data[ids]) ** 2).sum(-1))
    np.testing.assert_allclose(dist, ref, rtol=1e-4, atol=1e-4)
    assert backend.extra_metrics()["candidates_per_query"] == len(data)


@pytest.mark.parametrize("metric", ["angular", "ip"])
def test_inner_product_metrics_rerank_by_their_own_distance(metric: str) -> None:
    data, queries = clustered(n=1000, n_queries=40)
    if metric == "angular":
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    backend = lsh(metric, n_bits=3, n_tables=1)
    backend.build(data)
    backend.set_query_params(probe_radius=3)
    dist, ids = backend.search(queries, 5)
    dots = queries @ data.T
    np.testing.assert_array_equal(ids, np.argsort(-dots, axis=1, kind="stable")[:, :5])
    expected = 1 - np.take_along_axis(dots, ids, 1) if metric == "angular" else -np.take_along_axis(
        dots, ids, 1)
    np.testing.assert_allclose(dist, expected, rtol=1e-5, atol=1e-5)


def test_fallback_pad_or_scan() -> None:
    data, queries = clustered(n=2000, n_queries=100)
    backend = lsh(n_bits=30, n_tables=1, seed=5)  # tiny buckets: most queries find < k
    backend.build(data)
    backend.set_query_params(fallback="pad")
    padded = backend.search(queries, 10)[1]
    assert (padded == -1).any()
    short = (padded == -1).any(axis=1)
    assert backend.extra_metrics()["full_scan_fraction"] == 0.0
    backend.set_query_params(fallback="scan")
    scanned = backend.search(queries, 10)[1]
    assert (scanned >= 0).all()
    np.testing.assert_array_equal(scanned[short], exact_ids(data, queries[short], 10))
    np.testing.assert_array_equal(scanned[~short], padded[~short])
    extra = backend.extra_metrics()
    assert extra["full_scan_fraction"] == pytest.approx(short.mean())
    assert extra["candidates_per_query"] >= short.mean() * len(data)


def test_median_thresholds_balance_off_centre_data() -> None:
    data, _ = clustered(n=2000, offset=25.0)
    buckets = {}
    for thresholds in ("zero", "median"):
        backend = lsh(n_bits=8, n_tables=1, thresholds=thresholds, seed=2)
        backend.build(data)
        buckets[thresholds] = len(backend._tables[0][0])
    assert buckets["zero"] < 20 < buckets["median"]


def test_seed_decides_the_hyperplanes() -> None:
    data, queries = clustered(n=1000, n_queries=50)
    runs = []
    for seed in (1, 1, 2):
        backend = lsh(n_bits=10, n_tables=2, seed=seed)
        backend.build(data)
        runs.append(backend.search(queries, 10)[1])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_query_blocks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    data, queries = clustered(n=1500, n_queries=120)
    backend = lsh(n_bits=6, n_tables=4)
    backend.build(data)
    backend.set_query_params(probe_radius=1)
    whole = backend.search(queries, 10)
    monkeypatch.setattr(lsh_module, "_PAIR_BUDGET", 5000)
    monkeypatch.setattr("bench.algorithms._numpy_knn.BLOCK_ELEMENTS", 777)
    monkeypatch.setattr("bench.algorithms._numpy_knn.PAIR_CHUNK_ELEMENTS", 1)
    blocked = backend.search(queries, 10)
    np.testing.assert_array_equal(whole[1], blocked[1])
    np.testing.assert_allclose(whole[0], blocked[0], rtol=1e-6)


def test_index_bytes_counts_tables_and_vectors() -> None:
    data, _ = clustered(n=1000)
    backend = lsh(n_bits=8, n_tables=4)
    backend.build(data)
    assert backend.index_bytes() > data.nbytes + 4 * len(data) * 4


@pytest.mark.parametrize(
    ("build", "query", "field"),
    [
        ({"n_bits": 0}, {}, "n_bits"),
        ({"n_bits": 63}, {}, "n_bits"),
        ({"n_tables": 0}, {}, "n_tables"),
        ({"thresholds": "mean"}, {}, "thresholds"),
        ({"n_bits": 40}, {"probe_radius": 5}, "probe_radius"),
        ({}, {"probe_radius": -1}, "probe_radius"),
        ({}, {"fallback": "scan-all"}, "fallback"),
        ({}, {"radius": 1}, "radius"),
    ],
)
def test_bad_parameters_name_the_field(build: dict, query: dict, field: str) -> None:
    with pytest.raises(BenchError, match=field):
        backend = lsh(**build)
        backend.set_query_params(**query)


def test_faiss_index_lsh_stays_available_for_comparison() -> None:
    data, queries = clustered(n=1000, n_queries=50)
    faiss_backend = registry.get("faiss")("euclidean", 24, factory="LSHrt")
    faiss_backend.build(data)
    ids = faiss_backend.search(queries, 10)[1]
    assert recall(ids, exact_ids(data, queries, 10)) > 0.2
