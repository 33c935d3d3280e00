"""The torch exact-search backend: same ids as the ground truth (ties to the lower id)
on every metric, blocked search, reduced precision, and device handling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import bench.groundtruth.torch_knn as tb  # noqa: E402
from bench.algorithms.torch_backend import TorchBackend  # noqa: E402
from bench.core.errors import BenchError  # noqa: E402
from bench.groundtruth.exact import exact_knn  # noqa: E402

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _data(metric: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if metric == "hamming":
        db = rng.integers(0, 256, (700, 8), dtype=np.uint8)
        db[350:] = db[:350]  # every code twice: ties everywhere
        return db, rng.integers(0, 256, (40, 8), dtype=np.uint8)
    db = rng.integers(-3, 4, (700, 16)).astype(np.float32)  # small integers: exact ties
    db[500:] = db[300:500]
    q = rng.integers(-3, 4, (40, 16)).astype(np.float32)
    if metric == "angular":
        db[np.all(db == 0, axis=1)] = 1.0
        q[np.all(q == 0, axis=1)] = 1.0
        db /= np.linalg.norm(db, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    return db, q


@pytest.mark.parametrize("metric", ["euclidean", "ip", "hamming"])
def test_ids_equal_the_ground_truth_with_ties_to_the_lower_id(metric, monkeypatch):
    monkeypatch.setattr(tb, "BLOCK_ELEMENTS", 40 * 97)  # many database blocks
    db, q = _data(metric)
    backend = TorchBackend(metric, db.shape[1] * (8 if metric == "hamming" else 1))
    backend.build(db)
    dist, ids = backend.search(q, 15)
    gt_dist, gt_ids = exact_knn(db, q, 15, metric, threads=1)
    np.testing.assert_array_equal(ids, gt_ids)
    np.testing.assert_allclose(dist, gt_dist, rtol=1e-5, atol=1e-5)


def test_angular_matches_the_ground_truth():
    db, q = _data("angular", seed=3)
    backend = TorchBackend("angular", db.shape[1])
    backend.build(db)
    _, ids = backend.search(q, 10)
    _, gt_ids = exact_knn(db, q, 10, "angular", threads=1)
    assert (ids == gt_ids).mean() > 0.99  # float32 rounding of 1 - cos near ties


def test_bfloat16_is_close_and_index_is_smaller():
    rng = np.random.default_rng(5)
    db = rng.normal(size=(2000, 32)).astype(np.float32)
    q = rng.normal(size=(50, 32)).astype(np.float32)
    full, half = TorchBackend("euclidean", 32), TorchBackend("euclidean", 32, dtype="bfloat16")
    full.build(db)
    half.build(db)
    _, a = full.search(q, 10)
    _, b = half.search(q, 10)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])
    assert overlap > 0.8
    assert half.index_bytes() < full.index_bytes()


def test_fewer_rows_than_k_are_padded():
    db, q = _data("euclidean")
    backend = TorchBackend("euclidean", 16)
    backend.build(db[:5])
    dist, ids = backend.search(q[:3], 8)
    assert ids.shape == (3, 8) and (ids[:, 5:] == -1).all() and np.isinf(dist[:, 5:]).all()


def test_unknown_dtype_and_missing_gpu_are_one_line():
    with pytest.raises(BenchError, match="dtype"):
        TorchBackend("euclidean", 4, dtype="float64")
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="no CUDA GPU"):
            TorchBackend("euclidean", 4, device="cuda")
    assert TorchBackend("euclidean", 4, device="auto").device in ("cpu", "cuda")


@GPU
@pytest.mark.parametrize("metric", ["euclidean", "ip", "hamming"])
def test_gpu_ids_equal_the_cpu_ids(metric):
    db, q = _data(metric)
    dim = db.shape[1] * (8 if metric == "hamming" else 1)
    cpu, gpu = TorchBackend(metric, dim), TorchBackend(metric, dim, device="cuda")
    cpu.build(db)
    gpu.build(db)
    np.testing.assert_array_equal(cpu.search(q, 10)[1], gpu.search(q, 10)[1])
    assert gpu.extra_metrics()["gpu_peak_memory_bytes"] > 0


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip", "hamming"])
def test_device_ground_truth_equals_the_cpu_path(metric):
    from bench.groundtruth.torch_knn import exact_knn_device

    db, q = _data(metric, seed=11)
    gt_dist, gt_ids = exact_knn(db, q, 12, metric, threads=1)
    dist, ids = exact_knn_device(db, q, 12, metric, device="cpu")
    np.testing.assert_array_equal(ids, gt_ids)
    np.testing.assert_allclose(dist, gt_dist, rtol=1e-6, atol=1e-6)


def test_device_ground_truth_pads_like_the_cpu_path():
    from bench.groundtruth.torch_knn import exact_knn_device

    db, q = _data("euclidean")
    dist, ids = exact_knn_device(db[:4], q[:2], 6, "euclidean", device="cpu")
    gt_dist, gt_ids = exact_knn(db[:4], q[:2], 6, "euclidean", threads=1)
    np.testing.assert_array_equal(ids, gt_ids)
    assert np.isinf(dist[:, 4:]).all()


@GPU
@pytest.mark.parametrize("metric", ["euclidean", "angular", "hamming"])
def test_gpu_ground_truth_equals_the_cpu_path(metric):
    from bench.groundtruth.torch_knn import exact_knn_device

    db, q = _data(metric, seed=13)
    _, gt_ids = exact_knn(db, q, 10, metric, threads=1)
    _, ids = exact_knn_device(db, q, 10, metric, device="cuda")
    np.testing.assert_array_equal(ids, gt_ids)


def test_experiment_ground_truth_on_a_torch_device(write_experiment, tmp_path):
    import json

    from click.testing import CliRunner
    from conftest import small_experiment

    from bench.cli import cli

    spec = small_experiment(ground_truth={"device": "auto"},
                            algorithms=[{"algorithm": "torch"},
                                        {"algorithm": "faiss", "build": {"factory": "Flat"}}])
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results" / "small" / "results.json").read_text())
    assert data["experiment"]["ground_truth"] == {"reuse": "auto", "device": "auto"}
    assert [r["recall"] for r in data["runs"]] == [1.0, 1.0]
    if not torch.cuda.is_available():
        spec["ground_truth"] = {"device": "cuda"}
        spec["name"] = "small-cuda"
        spec["dataset"] = {**spec["dataset"], "n": 1999}  # not in the ground-truth cache
        result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
        assert result.exit_code == 2
        assert "no CUDA GPU" in result.output and "Traceback" not in result.output


def test_faiss_on_cuda_is_refused_in_one_line_without_gpu_support():
    import faiss

    from bench.algorithms.faiss_backend import FaissBackend

    if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
        pytest.skip("this faiss has GPUs: the refusal does not apply")
    with pytest.raises(BenchError, match="faiss-gpu-cu12"):
        FaissBackend("euclidean", 8, factory="Flat", device="cuda")
    assert FaissBackend("euclidean", 8, factory="Flat", device="auto").device == "auto"
