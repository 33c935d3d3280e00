"""Exact ground truth against a float64 brute force, ties, memmaps and the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.groundtruth import exact as groundtruth
from bench.groundtruth import topk
from bench.groundtruth.exact import exact_distances, exact_knn, load_or_compute_ground_truth

METRICS = ("euclidean", "angular", "ip", "hamming")


def brute_force(db: np.ndarray, q: np.ndarray, k: int, metric: str):
    """float64 distances of every pair, sorted by (distance, id)."""
    if metric == "hamming":
        dist = np.bitwise_count(q[:, None, :] ^ db[None, :, :]).sum(-1).astype(np.float64)
    else:
        x, y = db.astype(np.float64), q.astype(np.float64)
        if metric == "euclidean":
            dist = np.sqrt(((y[:, None, :] - x[None]) ** 2).sum(-1))
        elif metric == "angular":
            dist = 1.0 - y @ x.T
        else:
            dist = -(y @ x.T)
    ids = np.broadcast_to(np.arange(len(db)), dist.shape)
    order = np.lexsort((ids, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, 1), order


def make_data(metric: str, n: int = 900, nq: int = 70, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    if metric == "hamming":
        return (rng.integers(0, 256, (n, dim // 4), dtype=np.uint8),
                rng.integers(0, 256, (nq, dim // 4), dtype=np.uint8))
    db = rng.standard_normal((n, dim)).astype(np.float32)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    if metric == "angular":
        db /= np.linalg.norm(db, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    return db, q


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks so a few hundred rows exercise the multi-block merge paths."""
    monkeypatch.setattr(groundtruth, "DB_BLOCK", 128)
    monkeypatch.setattr(groundtruth, "QUERY_BLOCK", 16)
    monkeypatch.setattr(groundtruth, "HAMMING_QUERY_BLOCK", 8)
    monkeypatch.setattr(topk, "SEED_COLUMNS", 8)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 10, 40])
def test_matches_brute_force(metric: str, k: int, small_blocks: None) -> None:
    db, q = make_data(metric)
    dist, ids = exact_knn(db, q, k, metric)
    ref_d, ref_i = brute_force(db, q, k, metric)
    assert dist.dtype == np.float32 and ids.dtype == np.int64
    assert dist.shape == ids.shape == (len(q), k)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_default_blocks_match_brute_force(metric: str) -> None:
    db, q = make_data(metric, n=3000, nq=40, seed=1)
    _, ids = exact_knn(db, q, 10, metric)
    np.testing.assert_array_equal(ids, brute_force(db, q, 10, metric)[1])


@pytest.mark.parametrize("metric", ("euclidean", "angular", "ip"))
def test_duplicates_are_broken_by_smaller_id(metric: str, small_blocks: None) -> None:
    db, q = make_data(metric, n=600, nq=5)
    copies = np.arange(7, 600, 13)  # 46 copies across all blocks: more than k + margin
    db[copies] = db[3]
    q[2] = db[3]
    dist, ids = exact_knn(db, q, 40, metric)
    # query 2: the original (id 3) and its copies in id order, all at the same distance
    expected = np.sort(np.concatenate([[3], copies]))[:40]
    if metric == "ip":  # the duplicates tie with each other, but need not be the best ip
        assert (np.diff(ids[2][np.isin(ids[2], expected)]) > 0).all()
    else:
        np.testing.assert_array_equal(ids[2], expected)
        assert np.unique(dist[2]).size == 1
    np.testing.assert_array_equal(ids, brute_force(db, q, 40, metric)[1])


def test_hamming_mass_ties_in_id_order(small_blocks: None) -> None:
    rng = np.random.default_rng(4)
    db = rng.choice(np.array([0, 1, 3], dtype=np.uint8), size=(500, 1))  # 3 codes, many ties
    q = np.array([[0], [2], [255]], dtype=np.uint8)
    dist, ids = exact_knn(db, q, 30, "hamming")
    np.testing.assert_array_equal(ids, brute_force(db, q, 30, "hamming")[1])
    np.testing.assert_array_equal(ids[0], np.flatnonzero(db[:, 0] == 0)[:30])
    assert (dist[0] == 0).all()


def test_far_from_origin_is_still_exact() -> None:
    """float32 |x|^2 - 2xy cannot rank points at offset 1000 with spread 0.01."""
    rng = np.random.default_rng(5)
    db = (1000 + 0.01 * rng.standard_normal((2000, 16))).astype(np.float32)
    q = (1000 + 0.01 * rng.standard_normal((30, 16))).astype(np.float32)
    np.testing.assert_array_equal(
        exact_knn(db, q, 10, "euclidean")[1], brute_force(db, q, 10, "euclidean")[1]
    )


@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_database_pads(metric: str) -> None:
    db, q = make_data(metric, n=5, nq=4)
    dist, ids = exact_knn(db, q, 8, metric)
    ref_d, ref_i = brute_force(db, q, 5, metric)
    np.testing.assert_array_equal(ids[:, :5], ref_i)
    assert (ids[:, 5:] == -1).all() and np.isinf(dist[:, 5:]).all()


def test_memmapped_input_gives_same_result(tmp_path: Path, small_blocks: None) -> None:
    db, q = make_data("euclidean", n=700)
    np.save(tmp_path / "db.npy", db)
    mm = np.load(tmp_path / "db.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap)
    calls: list[tuple[int, int]] = []
    dist, ids = exact_knn(mm, q, 10, "euclidean", threads=1,
                          progress=lambda done, total: calls.append((done, total)))
    ref = exact_knn(db, q, 10, "euclidean")
    np.testing.assert_array_equal(ids, ref[1])
    np.testing.assert_array_equal(dist, ref[0])
    assert calls[-1] == (len(q), len(q))
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_uint8_vectors_with_float_metric(small_blocks: None) -> None:
    rng = np.random.default_rng(6)
    db = rng.integers(0, 256, (400, 16), dtype=np.uint8)
    q = rng.integers(0, 256, (20, 16), dtype=np.uint8)
    _, ids = exact_knn(db, q, 10, "euclidean")
    np.testing.assert_array_equal(ids, brute_force(db, q, 10, "euclidean")[1])


@pytest.mark.parametrize("metric", METRICS)
def test_exact_distances(metric: str) -> None:
    db, q = make_data(metric, n=300, nq=20)
    ref_d, ref_i = brute_force(db, q, 6, metric)
    ids = ref_i.copy()
    ids[0, 3] = -1
    dist = exact_distances(db, q, ids, metric)
    assert dist.dtype == np.float64
    assert np.isnan(dist[0, 3])
    mask = ids >= 0
    np.testing.assert_allclose(dist[mask], ref_d[mask], rtol=1e-12, atol=1e-12)


def test_exact_distances_rejects_ids_outside_database() -> None:
    db, q = make_data("euclidean", n=50, nq=3)
    ids = np.zeros((3, 2), dtype=np.int64)
    ids[1, 1] = 50
    with pytest.raises(BenchError, match="id 50 .*query 1.*50 items"):
        exact_distances(db, q, ids, "euclidean")


def test_dimension_mismatch_and_bad_metric() -> None:
    db, _ = make_data("euclidean", n=50, dim=12)
    with pytest.raises(BenchError, match=r"\(50, 12\).*\(3, 8\)"):
        exact_knn(db, np.zeros((3, 8), np.float32), 2, "euclidean")
    with pytest.raises(BenchError, match="uint8"):
        exact_knn(db, db[:2], 2, "hamming")
    with pytest.raises(BenchError, match="unknown metric"):
        exact_knn(db, db[:2], 2, "chebyshev")


def test_cache_hit_and_larger_k_serves_smaller(tmp_path: Path) -> None:
    db, q = make_data("euclidean", n=400, nq=15)
    calls = []

    def compute(k: int):
        def run():
            calls.append(k)
            return exact_knn(db, q, k, "euclidean")
        return run

    cache = tmp_path / "gt"
    d10, i10 = load_or_compute_ground_truth(cache, "fp-a", "euclidean", 10, compute(10))
    again = load_or_compute_ground_truth(cache, "fp-a", "euclidean", 10, compute(10))
    d5, i5 = load_or_compute_ground_truth(cache, "fp-a", "l2", 5, compute(5))
    assert calls == [10]
    np.testing.assert_array_equal(again[1], i10)
    np.testing.assert_array_equal(i5, i10[:, :5])
    np.testing.assert_array_equal(d5, d10[:, :5])
    # another data fingerprint, metric or a larger k is computed afresh
    load_or_compute_ground_truth(cache, "fp-b", "euclidean", 10, compute(10))
    load_or_compute_ground_truth(cache, "fp-a", "ip", 10, compute(10))
    _, i20 = load_or_compute_ground_truth(cache, "fp-a", "euclidean", 20, compute(20))
    assert calls == [10, 10, 10, 20]
    np.testing.assert_array_equal(i20[:, :10], i10)
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*"))


def test_damaged_cache_file_is_recomputed(tmp_path: Path) -> None:
    db, q = make_data("ip", n=100, nq=5)
    calls = []

    def compute():
        calls.append(1)
        return exact_knn(db, q, 3, "ip")

    load_or_compute_ground_truth(tmp_path, "fp", "ip", 3, compute)
    for path in tmp_path.glob("*.ids.npy"):
        path.write_bytes(b"not an npy file")
    _, ids = load_or_compute_ground_truth(tmp_path, "fp", "ip", 3, compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(ids, brute_force(db, q, 3, "ip")[1])


def test_selection_keys_order_by_score_then_id() -> None:
    """-0.0 and +0.0 are equal scores, so the smaller id must win; negatives sort first."""
    scores = np.array([[-0.0, 0.0, -2.5, 1.0, -2.5]], dtype=np.float32)
    ids = np.array([[5, 3, 9, 0, 4]], dtype=np.uint64)
    keys = topk._keys(scores, ids)
    order = ids[0][np.argsort(keys[0])]
    np.testing.assert_array_equal(order, [4, 9, 3, 5, 0])


@pytest.mark.parametrize("metric", ["euclidean", "ip"])
def test_strided_fvecs_memmap(tmp_path: Path, metric: str, small_blocks: None) -> None:
    """A .fvecs file maps as a strided view past the row headers; no copy is needed."""
    from bench.datasets.formats import read_vectors, write_fvecs

    db, q = make_data(metric, n=500)
    write_fvecs(tmp_path / "db.fvecs", db)
    mapped = read_vectors(tmp_path / "db.fvecs")
    assert not mapped.flags.c_contiguous
    dist, ids = exact_knn(mapped, q, 10, metric)
    ref_d, ref_i = brute_force(db, q, 10, metric)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(exact_distances(mapped, q, ids, metric), ref_d, rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_query_ranges_in_threads_give_the_same_neighbours(metric: str, threads: int,
                                                         small_blocks: None) -> None:
    """Several threads split the queries; the result and the progress are unchanged."""
    db, q = make_data(metric, nq=70)
    seen: list[tuple[int, int]] = []
    dist, ids = exact_knn(db, q, 10, metric, threads=threads,
                          progress=lambda done, total: seen.append((done, total)))
    ref_d, ref_i = brute_force(db, q, 10, metric)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-6, atol=1e-6)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == len(q) and {t for _, t in seen} == {len(q)}


@pytest.mark.parametrize("size", [0, 7, 8, 1003, 4096])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.5, 1.0])
def test_true_positions_is_flatnonzero(size: int, density: float) -> None:
    mask = np.random.default_rng(size).random(size) < density
    np.testing.assert_array_equal(topk._true_positions(mask), np.flatnonzero(mask))
