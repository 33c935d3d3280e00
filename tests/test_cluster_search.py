"""Clustering search: partitions from scikit-learn, probe nearest clusters, exact re-rank."""

from __future__ import annotations

import numpy as np
import pytest

from bench.algorithms import registry
from bench.algorithms.clustering import ClusterSearchBackend
from bench.core.errors import BenchError


def clustered(n: int = 3000, n_queries: int = 150, dim: int = 16,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (12, dim))
    labels = rng.integers(0, 12, n + n_queries)
    x = (centres[labels] + rng.normal(0, 1, (n + n_queries, dim))).astype(np.float32)
    return x[:n], x[n:]


def exact(data: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    q, x = queries.astype(np.float64), data.astype(np.float64)
    if metric == "euclidean":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    else:
        d = -(q @ x.T)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / len(t)
                          for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("method", ["kmeans", "bisecting", "agglomerative"])
def test_probe_trades_candidates_for_recall(method: str) -> None:
    data, queries = clustered()
    truth = exact(data, queries, 10, "euclidean")
    backend = ClusterSearchBackend("euclidean", 16, n_clusters=24, method=method,
                                   sample_size=1500, seed=1)
    backend.build(data)
    # every row sits in exactly one inverted list
    assert backend._counts.sum() == len(data)
    np.testing.assert_array_equal(np.sort(backend._order), np.arange(len(data)))
    recalls, candidates = [], []
    for probe in (1, 2, 4, 24):
        backend.set_query_params(probe=probe)
        recalls.append(recall(backend.search(queries, 10)[1], truth))
        candidates.append(backend.extra_metrics()["candidates_per_query"])
    assert recalls == sorted(recalls), recalls  # candidate sets nest as probe grows
    assert candidates == sorted(candidates) and candidates[0] < len(data) / 8
    assert recalls[0] < 1.0
    assert recalls[-1] == 1.0 and candidates[-1] == len(data)  # all clusters: exact


@pytest.mark.parametrize("metric", ["angular", "ip"])
def test_inner_product_metrics_visit_clusters_by_inner_product(metric: str) -> None:
    data, queries = clustered()
    if metric == "angular":
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact(data, queries, 10, metric)
    backend = ClusterSearchBackend(metric, 16, n_clusters=16, seed=0)
    backend.build(data)
    backend.set_query_params(probe=4)
    assert recall(backend.search(queries, 10)[1], truth) >= 0.9
    backend.set_query_params(probe=16)
    np.testing.assert_array_equal(backend.search(queries, 10)[1], truth)


def test_comparable_to_faiss_ivf_on_the_same_data() -> None:
    """The point of the backend: a plain k-means partition against Faiss IVF, same lists."""
    data, queries = clustered(n=4000, n_queries=200)
    truth = exact(data, queries, 10, "euclidean")
    ours = ClusterSearchBackend("euclidean", 16, n_clusters=32, seed=0)
    ours.build(data)
    faiss_ivf = registry.get("faiss")("euclidean", 16, factory="IVF32,Flat")
    faiss_ivf.build(data)
    for probe in (2, 4):
        ours.set_query_params(probe=probe)
        faiss_ivf.set_query_params(nprobe=probe)
        r_ours = recall(ours.search(queries, 10)[1], truth)
        r_faiss = recall(faiss_ivf.search(queries, 10)[1], truth)
        assert abs(r_ours - r_faiss) < 0.15, (probe, r_ours, r_faiss)


def test_same_seed_same_partition() -> None:
    data, queries = clustered(n=2000, n_queries=50)
    ids = []
    for seed in (3, 3):
        backend = ClusterSearchBackend("euclidean", 16, n_clusters=20, seed=seed)
        backend.build(data)
        backend.set_query_params(probe=1)
        ids.append(backend.search(queries, 10)[1])
    np.testing.assert_array_equal(ids[0], ids[1])


def test_more_clusters_than_rows_and_query_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    data, queries = clustered(n=40, n_queries=30)
    backend = ClusterSearchBackend("euclidean", 16, n_clusters=256, seed=0)  # clamped to 40
    backend.build(data)
    backend.set_query_params(probe=40)
    whole = backend.search(queries, 5)[1]
    np.testing.assert_array_equal(whole, exact(data, queries, 5, "euclidean"))
    monkeypatch.setattr("bench.algorithms.clustering._PAIR_BUDGET", 50)
    np.testing.assert_array_equal(backend.search(queries, 5)[1], whole)


@pytest.mark.parametrize(
    ("build", "query", "field"),
    [
        ({"method": "dbscan"}, {}, "method"),
        ({"n_clusters": 0}, {}, "n_clusters"),
        ({"sample_size": 0}, {}, "sample_size"),
        ({}, {"probe": 0}, "probe"),
        ({}, {"nprobe": 4}, "nprobe"),
    ],
)
def test_bad_parameters_name_the_field(build: dict, query: dict, field: str) -> None:
    with pytest.raises(BenchError, match=field):
        ClusterSearchBackend("euclidean", 16, **build).set_query_params(**query)
