"""L1 and Jensen-Shannon end to end: ground truth against float64 references, the
Faiss canary and backends, and the refusals of backends without these metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import small_experiment
from scipy.spatial.distance import cdist

from bench.algorithms import registry
from bench.cli.main import cli
from bench.core.distances import canonical_metric
from bench.core.errors import BenchError
from bench.groundtruth.exact import exact_distances, exact_knn
from bench.run.runner import RunOptions, run_experiment


def _reference(db: np.ndarray, q: np.ndarray, k: int, metric: str):
    """float64 numpy / scipy distances of every pair, sorted by (distance, id)."""
    x, y = db.astype(np.float64), q.astype(np.float64)
    if metric == "l1":
        dist = np.abs(y[:, None, :] - x[None, :, :]).sum(-1)
    else:
        dist = cdist(y, x, "jensenshannon") ** 2
    ids = np.broadcast_to(np.arange(len(db)), dist.shape)
    order = np.lexsort((ids, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, 1), order


def _distributions(rng: np.random.Generator, n: int, dim: int, zeros: bool) -> np.ndarray:
    x = rng.random((n, dim))
    if zeros:
        x[rng.random((n, dim)) < 0.2] = 0.0  # ReLU-like features have exact zeros
        x[:, 0] += 1e-3  # no all-zero row
    return (x / x.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_l1_ground_truth_matches_float64_numpy(threads: int) -> None:
    rng = np.random.default_rng(3)
    db = rng.standard_normal((9000, 20)).astype(np.float32)  # > one database block
    q = rng.standard_normal((600, 20)).astype(np.float32)  # > one query block
    db[100] = db[50]  # a duplicate: the lower id must come first
    q[0] = db[50]
    dist, ids = exact_knn(db, q, 10, "l1", threads=threads)
    ref_d, ref_i = _reference(db, q, 10, "l1")
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-6)
    assert list(ids[0, :2]) == [50, 100]
    np.testing.assert_allclose(exact_distances(db, q, ids, "cityblock"), ref_d, rtol=1e-12)


@pytest.mark.parametrize("zeros", [False, True])
def test_jensen_shannon_ground_truth_matches_scipy(zeros: bool) -> None:
    rng = np.random.default_rng(4)
    db, q = _distributions(rng, 3000, 16, zeros), _distributions(rng, 60, 16, zeros)
    dist, ids = exact_knn(db, q, 10, "js")
    ref_d, ref_i = _reference(db, q, 10, "jensen-shannon")
    np.testing.assert_array_equal(ids, ref_i)
    # scipy re-scales each float32 row to sum 1 in float64 (a 1e-8 relative change)
    np.testing.assert_allclose(exact_distances(db, q, ids, "jensen-shannon"), ref_d,
                               rtol=1e-6, atol=1e-15)


def test_metric_aliases() -> None:
    assert canonical_metric("cityblock") == canonical_metric("manhattan") == "l1"
    assert canonical_metric("JS") == "jensen-shannon"


def test_l1_faiss_flat_reaches_recall_one_through_bench_run(write_experiment) -> None:
    spec = small_experiment(metric="l1", algorithms=[
        {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
        {"algorithm": "faiss", "name": "ivf", "build": {"factory": "IVF16,Flat"},
         "query": {"nprobe": [1, 16]}},
        {"algorithm": "bruteforce"},
        {"algorithm": "annoy", "build": {"n_trees": 20}},
    ])
    results = run_experiment(write_experiment(spec), RunOptions(progress=False))
    data = json.loads(results.path.read_text())
    runs = {(r["label"], json.dumps(r["query_params"])): r for r in data["runs"]}
    assert all(r["status"] == "ok" for r in runs.values()), [r.get("error") for r in runs.values()]
    assert all(r["metric"] == "l1" for r in runs.values())
    assert runs[("flat", "{}")]["recall"] == 1.0
    assert runs[("bruteforce", "{}")]["recall"] == 1.0
    assert runs[("ivf", '{"nprobe": 16}')]["recall"] == 1.0  # every list visited
    assert runs[("ivf", '{"nprobe": 1}')]["recall"] < 1.0
    assert data["dataset"]["feature_sets"]["vectors"]["sanity_exact_recall"] == 1.0


def test_jensen_shannon_runs_and_faiss_refuses_zero_components(write_experiment, tmp_path):
    rng = np.random.default_rng(5)
    db, q = _distributions(rng, 1500, 12, True), _distributions(rng, 50, 12, True)
    np.save(tmp_path / "db.npy", db)
    np.save(tmp_path / "q.npy", q)
    spec = small_experiment(
        metric="jensen-shannon",
        dataset={"name": "vectors", "database": str(tmp_path / "db.npy"),
                 "queries": str(tmp_path / "q.npy")},
        algorithms=[{"algorithm": "bruteforce"},
                    {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}}])
    results = run_experiment(write_experiment(spec), RunOptions(progress=False))
    runs = {r["label"]: r for r in json.loads(results.path.read_text())["runs"]}
    assert runs["bruteforce"]["status"] == "ok" and runs["bruteforce"]["recall"] == 1.0
    assert runs["flat"]["status"] == "failed"
    assert "zero component" in runs["flat"]["error"] and "\n" not in runs["flat"]["error"]


def test_faiss_jensen_shannon_on_positive_data_is_exact() -> None:
    rng = np.random.default_rng(6)
    db, q = _distributions(rng, 2000, 16, False), _distributions(rng, 40, 16, False)
    backend = registry.get("faiss")("jensen-shannon", 16, factory="Flat")
    backend.build(db)
    dist, ids = backend.search(q, 10)
    ref_d, ref_i = _reference(db, q, 10, "jensen-shannon")
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4)


def test_jensen_shannon_refuses_negative_features(write_experiment) -> None:
    spec = small_experiment(metric="jensen-shannon", algorithms=[{"algorithm": "bruteforce"}])
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
    assert result.exit_code == 2
    assert "negative values" in result.output and "jensen-shannon" in result.output


@pytest.mark.parametrize("metric", ["l1", "jensen-shannon"])
def test_hnswlib_refuses_in_one_line(write_experiment, metric: str) -> None:
    with pytest.raises(BenchError, match=f"does not support metric '{metric}'"):
        registry.get("hnswlib")(metric, 8)
    spec = small_experiment(metric=metric, algorithms=[{"algorithm": "hnswlib"}])
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "hnswlib does not support metric" in lines[0], result.output
