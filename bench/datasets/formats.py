"""Readers and writers of the common vector file formats.

Readers return numpy arrays that are memory-mapped wherever the layout allows
(TEXMEX vecs as a strided view past the per-row headers, big-ann bin past the
8-byte header, .npy, uncompressed contiguous HDF5 datasets), so opening a
100 GB file costs nothing until rows are read. Element types are kept as stored
(uint8 SIFT1B stays uint8): converting to float32 here would copy the file into
memory; the consumer converts block by block.

Formats:
- TEXMEX ``.fvecs`` (float32), ``.ivecs`` (int32), ``.bvecs`` (uint8): every row is
  an int32 dimension followed by that many components;
- big-ann ``.fbin`` (float32), ``.u8bin`` (uint8), ``.i8bin`` (int8), ``.ibin``
  (int32): header uint32 n, uint32 d, then n*d values, row-major;
- ``.npy``, never unpickled;
- ann-benchmarks HDF5 (``read_ann_hdf5``): ``train``, ``test``, ``neighbors``,
  ``distances`` and the ``distance`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError

VECS_TYPES = {".fvecs": np.float32, ".ivecs": np.int32, ".bvecs": np.uint8}
BIN_TYPES = {".fbin": np.float32, ".u8bin": np.uint8, ".i8bin": np.int8, ".ibin": np.int32}
SUFFIXES = (*VECS_TYPES, *BIN_TYPES, ".npy")
#: rows per block when checking TEXMEX row headers
HEADER_CHECK_ROWS = 1 << 20
#: rows per block when packing ann-benchmarks bit vectors
PACK_ROWS = 1 << 16

#: ann-benchmarks ``distance`` attribute -> canonical metric (bench.core.distances)
ANN_DISTANCES = {"euclidean": "euclidean", "angular": "angular", "hamming": "hamming"}


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: vector file not found")
    return path


def read_vecs(path: str | Path) -> np.ndarray:
    """TEXMEX .fvecs/.ivecs/.bvecs as an (n, d) memory-mapped view without the headers."""
    path = _existing(path)
    dtype = np.dtype(VECS_TYPES.get(path.suffix.lower(), np.float32))
    size = path.stat().st_size
    if size < 4:
        raise BenchError(f"{path}: empty or truncated {path.suffix} file ({size} bytes)")
    dim = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if dim <= 0:
        raise BenchError(f"{path}: first row declares dimension {dim}; expected a positive int32")
    row = 4 + dim * dtype.itemsize
    if size % row:
        raise BenchError(
            f"{path}: size {size} bytes is not a multiple of the row size {row} "
            f"(dimension {dim}): truncated or not a {path.suffix} file"
        )
    layout = np.dtype([("dim", "<i4"), ("vec", dtype.newbyteorder("<"), (dim,))])
    records = np.memmap(path, dtype=layout, mode="r", shape=(size // row,))
    headers = records["dim"]
    for start in range(0, len(records), HEADER_CHECK_ROWS):
        block = np.asarray(headers[start : start + HEADER_CHECK_ROWS])
        bad = np.flatnonzero(block != dim)
        if len(bad):
            r = start + int(bad[0])
            raise BenchError(
                f"{path}: row {r} declares dimension {int(block[bad[0]])}, the first row {dim}; "
                "rows of different length or a damaged file"
            )
    return records["vec"]


def read_bin(path: str | Path) -> np.ndarray:
    """big-ann .fbin/.u8bin/.i8bin/.ibin as an (n, d) memory map past the header."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix not in BIN_TYPES:
        raise BenchError(f"{path}: unknown big-ann suffix; expected one of {', '.join(BIN_TYPES)}")
    dtype = np.dtype(BIN_TYPES[suffix]).newbyteorder("<")
    size = path.stat().st_size
    if size < 8:
        raise BenchError(f"{path}: {size} bytes, shorter than the 8-byte header (uint32 n, d)")
    n, dim = (int(v) for v in np.fromfile(path, dtype="<u4", count=2))
    expected = 8 + n * dim * dtype.itemsize
    if size != expected:
        raise BenchError(
            f"{path}: header says {n} x {dim} {dtype.name} ({expected} bytes) but the file has "
            f"{size} bytes: truncated or not a {suffix} file"
        )
    if n == 0 or dim == 0:
        return np.zeros((n, dim), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, dim))


def read_npy(path: str | Path) -> np.ndarray:
    """.npy memory-mapped; object arrays are refused (loading them would unpickle)."""
    path = _existing(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except EOFError:  # click would turn this into a bare "Aborted!"
        raise BenchError(f"{path}: empty or truncated .npy file") from None
    except (ValueError, OSError) as exc:
        raise BenchError(f"{path}: cannot be read as a numeric .npy array ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        kind = getattr(array, "dtype", type(array).__name__)
        raise BenchError(f"{path}: holds {kind}; expected a numeric array")
    return array


def read_vectors(path: str | Path) -> np.ndarray:
    """Any single-array vector file, chosen by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VECS_TYPES:
        return read_vecs(path)
    if suffix in BIN_TYPES:
        return read_bin(path)
    if suffix == ".npy":
        return read_npy(path)
    hint = " (ann-benchmarks files: use dataset hdf5)" if suffix in (".hdf5", ".h5") else ""
    raise BenchError(
        f"{path}: unknown vector file suffix {suffix or '(none)'!r}; expected one of "
        f"{', '.join(SUFFIXES)}{hint}"
    )


def write_vecs(path: str | Path, array: np.ndarray, dtype: type | np.dtype) -> None:
    """Write TEXMEX rows: int32 dimension, then the components as ``dtype``."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise BenchError(f"{path}: expected a 2-D array to write, got shape {array.shape}")
    dt = np.dtype(dtype).newbyteorder("<")
    layout = np.dtype([("dim", "<i4"), ("vec", dt, (array.shape[1],))])
    records = np.empty(len(array), dtype=layout)
    records["dim"] = array.shape[1]
    records["vec"] = array
    records.tofile(path)


def write_fvecs(path: str | Path, array: np.ndarray) -> None:
    write_vecs(path, array, np.float32)


def write_ivecs(path: str | Path, array: np.ndarray) -> None:
    write_vecs(path, array, np.int32)


def write_bvecs(path: str | Path, array: np.ndarray) -> None:
    write_vecs(path, array, np.uint8)


def write_bin(path: str | Path, array: np.ndarray) -> None:
    """Write a big-ann file; the element type follows the suffix (.fbin -> float32, ...)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in BIN_TYPES:
        raise BenchError(f"{path}: unknown big-ann suffix; expected one of {', '.join(BIN_TYPES)}")
    array = np.asarray(array)
    if array.ndim != 2:
        raise BenchError(f"{path}: expected a 2-D array to write, got shape {array.shape}")
    with open(path, "wb") as fh:
        np.array(array.shape, dtype="<u4").tofile(fh)
        np.ascontiguousarray(array, dtype=np.dtype(BIN_TYPES[suffix]).newbyteorder("<")).tofile(fh)


@dataclass
class AnnHdf5:
    train: np.ndarray
    test: np.ndarray
    metric: str
    neighbors: np.ndarray | None
    distances: np.ndarray | None
    attrs: dict[str, object]


def _hdf5_array(path: Path, dset: Any) -> np.ndarray:
    """A memory map of a contiguous (hence uncompressed) HDF5 dataset, as ann-benchmarks
    writes them; chunked or compressed datasets are read into memory."""
    import h5py

    if not isinstance(dset, h5py.Dataset):
        raise BenchError(f"{path}: {dset.name.lstrip('/')} is an HDF5 {type(dset).__name__.lower()}"
                         ", not a dataset; expected a numeric array")
    if dset.dtype.kind not in "biuf":
        raise BenchError(f"{path}: {dset.name.lstrip('/')} holds {dset.dtype}; expected a numeric "
                         "array")
    offset = dset.id.get_offset()
    if dset.chunks is None and offset is not None and dset.size:
        return np.memmap(path, dtype=dset.dtype, mode="r", offset=offset, shape=dset.shape)
    return dset[()]


def _pack_bits(path: Path, name: str, bits: np.ndarray) -> np.ndarray:
    """ann-benchmarks stores one 0/1 value per bit; pack 8 per byte, MSB first."""
    if bits.dtype.kind not in "biu":
        raise BenchError(f"{path}: {name} has dtype {bits.dtype}; hamming data must be 0/1 bits")
    out = np.empty((len(bits), (bits.shape[1] + 7) // 8), dtype=np.uint8)
    for start in range(0, len(bits), PACK_ROWS):
        block = np.asarray(bits[start : start + PACK_ROWS])
        if block.dtype != np.bool_ and ((block != 0) & (block != 1)).any():
            row = start + int(np.flatnonzero(((block != 0) & (block != 1)).any(axis=1))[0])
            raise BenchError(f"{path}: {name} row {row} has values other than 0 and 1")
        out[start : start + len(block)] = np.packbits(block.astype(bool), axis=1)
    return out


def read_ann_hdf5(path: str | Path) -> AnnHdf5:
    """An ann-benchmarks file, its ``distance`` attribute mapped to a canonical metric."""
    path = _existing(path)
    import h5py  # a core dependency, imported lazily to keep registry discovery fast

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise BenchError(f"{path}: not a readable HDF5 file ({exc})") from None
    with fh:
        missing = [name for name in ("train", "test") if name not in fh]
        if missing:
            raise BenchError(f"{path}: missing dataset(s) {', '.join(missing)}; "
                             "expected an ann-benchmarks file with train and test")
        attrs = {key: _plain(value) for key, value in fh.attrs.items()}
        distance = str(attrs.get("distance", "")).lower()
        if distance not in ANN_DISTANCES:
            extra = " (set similarity) is not supported" if distance == "jaccard" else ""
            raise BenchError(
                f"{path}: distance attribute {distance or '(missing)'!r}{extra}; expected one of "
                f"{', '.join(ANN_DISTANCES)}"
            )
        metric = ANN_DISTANCES[distance]
        arrays = {name: _hdf5_array(path, fh[name]) for name in
                  ("train", "test", "neighbors", "distances") if name in fh}
    if metric == "hamming":
        for name in ("train", "test"):
            arrays[name] = _pack_bits(path, name, arrays[name])
    return AnnHdf5(
        train=arrays["train"], test=arrays["test"], metric=metric,
        neighbors=arrays.get("neighbors"), distances=arrays.get("distances"), attrs=attrs,
    )


def _plain(value: object) -> object:
    """HDF5 attributes come back as numpy scalars or bytes; make them JSON-friendly."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
