"""Registered vector datasets (synthetic, hdf5, vectors) and validate_vectors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from pydantic import ValidationError

from bench.core.errors import BenchError
from bench.datasets import DatasetContext, VectorData, registry
from bench.datasets import vectors as vec
from bench.datasets.formats import write_bin, write_bvecs, write_fvecs, write_ivecs
from bench.groundtruth.exact import exact_knn


def load(name: str, tmp_path: Path, context_seed: int = 7, **options) -> VectorData:
    cls = registry.get(name)
    context = DatasetContext(seed=context_seed, cache_dir=tmp_path / "cache", base_dir=tmp_path)
    data = cls(cls.Options.model_validate(options), context).load()
    assert isinstance(data, VectorData)
    return data


def test_synthetic_is_deterministic_and_held_out(tmp_path: Path) -> None:
    opts = {"n": 3000, "n_queries": 200, "dim": 24, "n_clusters": 20}
    a = load("synthetic", tmp_path, **opts)
    b = load("synthetic", tmp_path, **opts)
    c = load("synthetic", tmp_path, context_seed=8, **opts)
    d = load("synthetic", tmp_path, context_seed=8, seed=7, **opts)  # option beats context
    assert a.database.shape == (3000, 24) and a.queries.shape == (200, 24)
    assert a.database.dtype == np.float32 and a.metric is None
    np.testing.assert_array_equal(a.database, b.database)
    np.testing.assert_array_equal(a.queries, d.queries)
    assert not np.array_equal(a.database, c.database)
    assert a.description["seed"] == 7 and c.description["seed"] == 8
    dist, _ = exact_knn(a.database, a.queries, 1, "euclidean")
    assert (dist[:, 0] > 0).all()  # no query is a copy of a database vector


def test_synthetic_clustered_has_structure_uniform_does_not(tmp_path: Path) -> None:
    """Clustered queries have near neighbours far closer than a random database point."""
    ratios = {}
    for kind in ("clustered", "uniform"):
        data = load("synthetic", tmp_path, kind=kind, n=4000, n_queries=100, dim=32,
                    n_clusters=16)
        nn, _ = exact_knn(data.database, data.queries, 1, "euclidean")
        rand = np.linalg.norm(data.queries - data.database[:100], axis=1)
        ratios[kind] = float(nn[:, 0].mean() / rand.mean())
    assert ratios["clustered"] < 0.5 < ratios["uniform"]


def test_synthetic_binary_codes(tmp_path: Path) -> None:
    data = load("synthetic", tmp_path, n=500, n_queries=20, dim=64, binary=True)
    assert data.metric == "hamming" and data.description["binary_codes"] is True
    assert data.database.dtype == np.uint8 and data.database.shape == (500, 8)
    assert data.queries.shape == (20, 8)
    assert len(np.unique(data.database, axis=0)) > 100  # real codes, not constant


def test_synthetic_options_are_strict(tmp_path: Path) -> None:
    cls = registry.get("synthetic")
    with pytest.raises(ValidationError, match="multiple of 8"):
        cls.Options.model_validate({"dim": 10, "binary": True})
    with pytest.raises(ValidationError, match="n_cluster"):
        cls.Options.model_validate({"n_cluster": 3})
    with pytest.raises(ValidationError):
        cls.Options.model_validate({"kind": "gaussian"})


def test_hdf5_dataset_with_relative_path_and_neighbours(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = rng.standard_normal((300, 8)).astype(np.float32)
    test = rng.standard_normal((12, 8)).astype(np.float32)
    dist, ids = exact_knn(train, test, 10, "euclidean")
    with h5py.File(tmp_path / "tiny-8-euclidean.hdf5", "w") as f:
        f.attrs["distance"] = "euclidean"
        f.attrs["dimension"] = 8
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=ids.astype(np.int32))
        f.create_dataset("distances", data=dist)
    data = load("hdf5", tmp_path, path="tiny-8-euclidean.hdf5")
    assert data.metric == "euclidean"
    np.testing.assert_array_equal(data.database, train)
    np.testing.assert_array_equal(data.neighbors, ids)
    np.testing.assert_allclose(data.distances, dist)
    assert data.description["distance"] == "euclidean"
    assert data.description["binary_codes"] is False


def test_hdf5_dataset_neighbours_outside_database(tmp_path: Path) -> None:
    train = np.ones((20, 4), np.float32)
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f.attrs["distance"] = "angular"
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=train[:3])
        f.create_dataset("neighbors", data=np.full((3, 5), 20, np.int32))
    with pytest.raises(BenchError, match=r"bad.hdf5 neighbors: neighbour ids range 20\.\.20"):
        load("hdf5", tmp_path, path="bad.hdf5")


def test_vectors_dataset_fvecs_with_ivecs_neighbours(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    db = rng.standard_normal((200, 16)).astype(np.float32)
    q = rng.standard_normal((9, 16)).astype(np.float32)
    write_fvecs(tmp_path / "base.fvecs", db)
    write_fvecs(tmp_path / "query.fvecs", q)
    write_ivecs(tmp_path / "gt.ivecs", exact_knn(db, q, 5, "euclidean")[1])
    data = load("vectors", tmp_path, database="base.fvecs", queries="query.fvecs",
                neighbors="gt.ivecs")
    np.testing.assert_array_equal(data.database, db)
    np.testing.assert_array_equal(data.neighbors, exact_knn(db, q, 5, "euclidean")[1])
    assert data.metric is None and data.neighbors.shape == (9, 5)


def test_vectors_dataset_keeps_uint8_memmapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_bvecs(tmp_path / "base.bvecs", rng.integers(0, 256, (100, 32), dtype=np.uint8))
    write_bin(tmp_path / "query.u8bin", rng.integers(0, 256, (4, 32), dtype=np.uint8))
    data = load("vectors", tmp_path, database="base.bvecs", queries="query.u8bin")
    assert data.database.dtype == np.uint8 and data.queries.dtype == np.uint8
    assert isinstance(data.database, np.memmap) and isinstance(data.queries, np.memmap)
    assert data.description["binary_codes"] is False
    coded = load("vectors", tmp_path, database="base.bvecs", queries="query.u8bin", binary=True)
    assert coded.metric == "hamming" and coded.description["binary_codes"] is True


def test_vectors_dataset_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    db = rng.standard_normal((50, 8)).astype(np.float32)
    db[23, 5] = np.nan
    write_bin(tmp_path / "db.fbin", db)
    np.save(tmp_path / "q.npy", db[:3, :6])
    np.save(tmp_path / "q8.npy", np.nan_to_num(db[:3]))
    with pytest.raises(BenchError, match=r"\(50, 8\).*\(3, 6\).*dimensions differ"):
        load("vectors", tmp_path, database="db.fbin", queries="q.npy")
    with pytest.raises(BenchError, match=r"db\.fbin: row 23 contains NaN"):
        load("vectors", tmp_path, database="db.fbin", queries="q8.npy")
    np.save(tmp_path / "ok.npy", np.nan_to_num(db))
    np.save(tmp_path / "nb.npy", np.zeros((2, 5), np.int64))
    with pytest.raises(BenchError, match="nb.npy: 2 rows of neighbours for 3 queries"):
        load("vectors", tmp_path, database="ok.npy", queries="q8.npy", neighbors="nb.npy")
    with pytest.raises(BenchError, match="binary: true needs packed uint8"):
        load("vectors", tmp_path, database="ok.npy", queries="q8.npy", binary=True)
    with pytest.raises(BenchError, match="missing.fvecs"):
        load("vectors", tmp_path, database="missing.fvecs", queries="q8.npy")


def test_validate_vectors_scans_memmaps_in_blocks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(vec, "SCAN_BYTES", 64)  # two rows of 8 float32 per block
    db = np.ones((40, 8), np.float32)
    db[33, 2] = np.inf
    np.save(tmp_path / "db.npy", db)
    mm = np.load(tmp_path / "db.npy", mmap_mode="r")
    with pytest.raises(BenchError, match="src database: row 33 contains NaN or infinite"):
        vec.validate_vectors(mm, db[:2], "euclidean", "src")
    db[33, 2] = 1
    db[17] = 0
    with pytest.raises(BenchError, match="src database: row 17 is a zero vector"):
        vec.validate_vectors(db, db[:2], "cosine", "src")
    vec.validate_vectors(db, db[:2], "euclidean", "src")  # zero rows are fine for L2
    with pytest.raises(BenchError, match=r"\(40, 8\).*\(2, 7\)"):
        vec.validate_vectors(db, db[:2, :7], "euclidean", "src")
    with pytest.raises(BenchError, match="hamming needs packed uint8"):
        vec.validate_vectors(db, db[:2], "hamming", "src")
    with pytest.raises(BenchError, match="non-empty 2-D"):
        vec.validate_vectors(db[:0], db[:2], "ip", "src")
