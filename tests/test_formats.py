"""Vector file formats: round trips, memory mapping, damaged files, ann-benchmarks HDF5."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.datasets.formats import (
    read_ann_hdf5,
    read_vectors,
    write_bin,
    write_bvecs,
    write_fvecs,
    write_ivecs,
)


def is_memmapped(array: np.ndarray) -> bool:
    base = array
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = base.base
    return False


def sample(dtype: type, n: int = 37, d: int = 11) -> np.ndarray:
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal((n, d)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), (n, d)).astype(dtype)


@pytest.mark.parametrize(
    "suffix, writer, dtype",
    [(".fvecs", write_fvecs, np.float32), (".ivecs", write_ivecs, np.int32),
     (".bvecs", write_bvecs, np.uint8)],
)
def test_vecs_round_trip_is_memmapped(tmp_path: Path, suffix: str, writer, dtype) -> None:
    data = sample(dtype)
    path = tmp_path / f"x{suffix}"
    writer(path, data)
    assert path.stat().st_size == len(data) * (4 + data.shape[1] * data.itemsize)
    back = read_vectors(path)
    assert back.dtype == dtype and back.shape == data.shape
    np.testing.assert_array_equal(back, data)
    assert is_memmapped(back)


@pytest.mark.parametrize(
    "suffix, dtype",
    [(".fbin", np.float32), (".u8bin", np.uint8), (".i8bin", np.int8), (".ibin", np.int32)],
)
def test_bin_round_trip_is_memmapped(tmp_path: Path, suffix: str, dtype) -> None:
    data = sample(dtype)
    path = tmp_path / f"x{suffix}"
    write_bin(path, data)
    header = np.fromfile(path, dtype="<u4", count=2)
    assert header.tolist() == [37, 11]
    back = read_vectors(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data)
    assert is_memmapped(back)


def test_npy_is_memmapped(tmp_path: Path) -> None:
    data = sample(np.float32)
    np.save(tmp_path / "x.npy", data)
    back = read_vectors(tmp_path / "x.npy")
    np.testing.assert_array_equal(back, data)
    assert is_memmapped(back)


def test_npy_object_array_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(BenchError, match="obj.npy"):
        read_vectors(tmp_path / "obj.npy")


def test_truncated_vecs_file(tmp_path: Path) -> None:
    path = tmp_path / "x.fvecs"
    write_fvecs(path, sample(np.float32))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(BenchError, match=r"x\.fvecs.*truncated"):
        read_vectors(path)


def test_vecs_rows_of_different_dimension(tmp_path: Path) -> None:
    path = tmp_path / "x.fvecs"
    write_fvecs(path, sample(np.float32, n=5, d=4))
    raw = bytearray(path.read_bytes())
    raw[3 * 20 : 3 * 20 + 4] = np.int32(7).tobytes()  # row 3 claims dimension 7
    path.write_bytes(bytes(raw))
    with pytest.raises(BenchError, match="row 3 declares dimension 7"):
        read_vectors(path)


def test_truncated_bin_file(tmp_path: Path) -> None:
    path = tmp_path / "x.u8bin"
    write_bin(path, sample(np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(BenchError, match=r"37 x 11 uint8 \(415 bytes\).*410 bytes"):
        read_vectors(path)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(BenchError, match="unknown vector file suffix '.csv'"):
        read_vectors(tmp_path / "x.csv")
    with pytest.raises(BenchError, match="nope.fvecs: vector file not found"):
        read_vectors(tmp_path / "nope.fvecs")


def write_ann(path: Path, distance: str, train: np.ndarray, test: np.ndarray,
              neighbors: np.ndarray | None = None, point_type: str = "float") -> None:
    """An ann-benchmarks file as its datasets.py writes them."""
    with h5py.File(path, "w") as f:
        f.attrs["type"] = "dense"
        f.attrs["distance"] = distance
        f.attrs["dimension"] = train.shape[1]
        f.attrs["point_type"] = point_type
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        if neighbors is not None:
            f.create_dataset("neighbors", data=neighbors.astype(np.int32))
            f.create_dataset("distances", data=np.zeros(neighbors.shape, np.float32))


@pytest.mark.parametrize("distance", ["euclidean", "angular"])
def test_ann_hdf5_float(tmp_path: Path, distance: str) -> None:
    train, test = sample(np.float32, n=60, d=6), sample(np.float32, n=7, d=6)
    nn = np.tile(np.arange(10), (7, 1))
    write_ann(tmp_path / "a.hdf5", distance, train, test, nn)
    ann = read_ann_hdf5(tmp_path / "a.hdf5")
    assert ann.metric == distance
    np.testing.assert_array_equal(ann.train, train)
    np.testing.assert_array_equal(ann.test, test)
    np.testing.assert_array_equal(ann.neighbors, nn)
    assert ann.distances is not None and ann.distances.shape == (7, 10)
    assert is_memmapped(ann.train)  # contiguous datasets are mapped, not read
    assert ann.attrs["dimension"] == 6 and ann.attrs["point_type"] == "float"


def test_ann_hdf5_compressed_is_read(tmp_path: Path) -> None:
    train = sample(np.float32, n=60, d=6)
    with h5py.File(tmp_path / "c.hdf5", "w") as f:
        f.attrs["distance"] = "euclidean"
        f.create_dataset("train", data=train, compression="gzip")
        f.create_dataset("test", data=train[:3])
    ann = read_ann_hdf5(tmp_path / "c.hdf5")
    np.testing.assert_array_equal(ann.train, train)
    assert ann.neighbors is None


def test_ann_hdf5_hamming_bits_are_packed_msb_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, (40, 20)).astype(bool)  # 20 bits: padded to 3 bytes
    write_ann(tmp_path / "h.hdf5", "hamming", bits, bits[:4], point_type="bit")
    ann = read_ann_hdf5(tmp_path / "h.hdf5")
    assert ann.metric == "hamming"
    assert ann.train.dtype == np.uint8 and ann.train.shape == (40, 3)
    np.testing.assert_array_equal(ann.train, np.packbits(bits, axis=1))
    first = ann.train[0, 0]
    assert (first >> 7) & 1 == bits[0, 0]  # MSB first
    # Hamming distance of packed codes equals the number of differing bits
    diff = np.bitwise_count(ann.train[0] ^ ann.train[1]).sum()
    assert diff == (bits[0] != bits[1]).sum()


def test_ann_hdf5_hamming_with_non_bits_is_refused(tmp_path: Path) -> None:
    data = np.zeros((5, 8), np.uint8)
    data[2, 1] = 7
    write_ann(tmp_path / "h.hdf5", "hamming", data, data[:2])
    with pytest.raises(BenchError, match="train row 2 has values other than 0 and 1"):
        read_ann_hdf5(tmp_path / "h.hdf5")


def test_ann_hdf5_jaccard_and_missing_parts(tmp_path: Path) -> None:
    data = sample(np.float32, n=5, d=3)
    write_ann(tmp_path / "j.hdf5", "jaccard", data, data)
    with pytest.raises(BenchError, match="jaccard.*not supported"):
        read_ann_hdf5(tmp_path / "j.hdf5")
    with h5py.File(tmp_path / "m.hdf5", "w") as f:
        f.attrs["distance"] = "euclidean"
        f.create_dataset("train", data=data)
    with pytest.raises(BenchError, match="m.hdf5: missing dataset.*test"):
        read_ann_hdf5(tmp_path / "m.hdf5")
    (tmp_path / "bad.hdf5").write_text("not hdf5")
    with pytest.raises(BenchError, match="bad.hdf5: not a readable HDF5 file"):
        read_ann_hdf5(tmp_path / "bad.hdf5")
