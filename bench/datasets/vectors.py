"""Datasets that yield vectors directly: synthetic data, ann-benchmarks HDF5, vector files.

Element types are kept as stored: uint8 SIFT (.bvecs/.u8bin), int8 (.i8bin) and
int32 files reach the harness unconverted and memory-mapped, because turning a
billion-row uint8 file into float32 here would copy it into memory four times
over. The consumer (the runner's feature preparation) converts to float32 block
by block. Packed binary codes for Hamming are uint8 too; they are told apart by
``description["binary_codes"]`` (and by a declared metric of ``hamming``), never
by the dtype alone.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from bench.core.distances import canonical_metric
from bench.core.errors import BenchError
from bench.core.options import StrictOptions
from bench.datasets import Dataset, VectorData, register
from bench.datasets.formats import read_ann_hdf5, read_vectors

#: bytes read per block when scanning (possibly memory-mapped) data for NaN / zero rows
SCAN_BYTES = 64 << 20
#: bytes of float32 rows generated at once, bounding the temporaries of synthetic data
GEN_BYTES = 64 << 20
#: synthetic data larger than this is generated into a memory-mapped file of the cache
MAP_BYTES = 256 << 20


def _blocks(array: np.ndarray) -> range:
    row_bytes = max(1, array.shape[1] * array.dtype.itemsize)
    return range(0, len(array), max(1, SCAN_BYTES // row_bytes))


def check_finite(array: np.ndarray, what: str) -> None:
    """NaN/inf in float data -> BenchError naming ``what`` and the first bad row."""
    if array.dtype.kind != "f":
        return
    step = _blocks(array).step
    for start in _blocks(array):
        block = np.asarray(array[start : start + step])
        ok = np.isfinite(block).all(axis=1)
        if not ok.all():
            row = start + int(np.flatnonzero(~ok)[0])
            raise BenchError(f"{what}: row {row} contains NaN or infinite values")


def check_nonzero(array: np.ndarray, what: str) -> None:
    """Angular data is normalised by the harness; a zero row has no direction."""
    step = _blocks(array).step
    for start in _blocks(array):
        block = np.asarray(array[start : start + step])
        zero = ~block.any(axis=1)
        if zero.any():
            row = start + int(np.flatnonzero(zero)[0])
            raise BenchError(
                f"{what}: row {row} is a zero vector, which cannot be normalised for metric angular"
            )


def validate_vectors(
    database: np.ndarray, queries: np.ndarray, metric: str | None, source: str
) -> None:
    """Check any VectorData before use: shapes, dtype for the metric, NaN/inf, zero rows.

    Memory-mapped arrays are scanned block by block, never loaded whole.
    """
    for name, array in (("database", database), ("queries", queries)):
        if array.ndim != 2 or len(array) == 0 or array.shape[1] == 0:
            raise BenchError(f"{source}: {name} must be a non-empty 2-D array, got {array.shape}")
    if database.shape[1] != queries.shape[1]:
        raise BenchError(
            f"{source}: database shape {database.shape} and queries shape {queries.shape} "
            "have different dimensions"
        )
    metric = canonical_metric(metric) if metric else None
    if metric == "hamming":
        for name, array in (("database", database), ("queries", queries)):
            if array.dtype != np.uint8:
                raise BenchError(
                    f"{source}: {name} has dtype {array.dtype}; metric hamming needs packed "
                    "uint8 binary codes"
                )
        return
    for name, array in (("database", database), ("queries", queries)):
        check_finite(array, f"{source} {name}")
        if metric == "angular":
            check_nonzero(array, f"{source} {name}")


def check_neighbors(neighbors: np.ndarray, n_database: int, n_queries: int, what: str) -> None:
    """A ground-truth file must have one row per query and ids inside the database."""
    if neighbors.ndim != 2 or neighbors.dtype.kind not in "iu":
        raise BenchError(
            f"{what}: expected a 2-D integer array of neighbour ids, got "
            f"{neighbors.dtype} {neighbors.shape}"
        )
    if len(neighbors) != n_queries:
        raise BenchError(
            f"{what}: {len(neighbors)} rows of neighbours for {n_queries} queries "
            f"(shape {neighbors.shape})"
        )
    if neighbors.size:
        lo, hi = int(np.min(neighbors)), int(np.max(neighbors))
        if lo < -1 or hi >= n_database:
            raise BenchError(
                f"{what}: neighbour ids range {lo}..{hi}, outside the database of "
                f"{n_database} rows"
            )


class SyntheticOptions(StrictOptions):
    kind: Literal["clustered", "uniform"] = "clustered"
    n: int = Field(10_000, ge=1)
    n_queries: int = Field(1_000, ge=1)
    dim: int = Field(64, ge=1)
    n_clusters: int = Field(100, ge=1)
    seed: int | None = None
    binary: bool = False

    @model_validator(mode="after")
    def _bits(self) -> SyntheticOptions:
        if self.binary and self.dim % 8:
            raise ValueError(f"binary: true packs dim bits into bytes; dim {self.dim} is not a "
                             "multiple of 8")
        return self


@register("synthetic")
class SyntheticDataset(Dataset):
    """Random vectors: a Gaussian mixture (clustered, like real features) or uniform.

    Clustered: centres ~ N(0, I), each cluster its own spread (0.5-1.0) and
    weight (Dirichlet(2)), so clusters overlap a little and differ in density, as
    in real embeddings; queries are drawn from the same mixture and held out of the
    database. ``binary: true`` gives the sign bits (uniform: above 0.5) as packed
    codes for Hamming.
    """

    Options = SyntheticOptions
    description = "synthetic clustered or uniform vectors (float32, or packed bits)"

    def load(self) -> VectorData:
        opt = self.options
        assert isinstance(opt, SyntheticOptions)
        seed = self.context.seed if opt.seed is None else opt.seed
        total = opt.n + opt.n_queries
        width = opt.dim // 8 if opt.binary else opt.dim
        description = {**opt.model_dump(), "seed": seed, "binary_codes": opt.binary}
        if total * width * (1 if opt.binary else 4) <= MAP_BYTES:
            data = np.empty((total, width), dtype=np.uint8 if opt.binary else np.float32)
            self._generate(data, seed)
        else:
            data = self._mapped(description, total, width)
        return VectorData(
            database=data[: opt.n], queries=data[opt.n :],
            metric="hamming" if opt.binary else None, description=description,
        )

    def _mapped(self, description: dict[str, Any], total: int, width: int) -> np.ndarray:
        """Large data generated once into a memory-mapped file of the cache (the same
        values, block by block), never held in memory: 500,000 x 4,096 is 8 GB."""
        import os

        from bench.core.files import reserve_disk, temp_file
        from bench.core.fingerprint import fingerprint_obj

        folder = self.context.cache_dir / "synthetic"
        path = folder / f"{fingerprint_obj({'version': 1, **description})}.npy"
        if not path.is_file():
            name = temp_file(folder, ".synthetic-", ".npy")
            try:
                out = np.lib.format.open_memmap(
                    name, mode="w+", dtype=np.uint8 if self.options.binary else np.float32,
                    shape=(total, width))
                reserve_disk(name)
                self._generate(out, int(description["seed"]))
                out.flush()
                del out
                os.replace(name, path)
            finally:
                name.unlink(missing_ok=True)
        return np.load(path, mmap_mode="r")

    def _generate(self, out: np.ndarray, seed: int) -> None:
        opt = self.options
        assert isinstance(opt, SyntheticOptions)
        rng = np.random.default_rng(seed)
        total = len(out)
        step = max(1, GEN_BYTES // (4 * opt.dim))
        centre = 0.0 if opt.kind == "clustered" else 0.5
        if opt.kind == "clustered":
            centres = rng.standard_normal((opt.n_clusters, opt.dim), dtype=np.float32)
            spread = rng.uniform(0.5, 1.0, opt.n_clusters).astype(np.float32)
            weights = rng.dirichlet(np.full(opt.n_clusters, 2.0))
            labels = rng.choice(opt.n_clusters, size=total, p=weights)
        for start in range(0, total, step):
            rows = min(step, total - start)
            if opt.kind == "clustered":
                lab = labels[start : start + rows]
                block = rng.standard_normal((rows, opt.dim), dtype=np.float32)
                block *= spread[lab, None]
                block += centres[lab]
            else:
                block = rng.random((rows, opt.dim), dtype=np.float32)
            out[start : start + rows] = np.packbits(block > centre, axis=1) if opt.binary \
                else block


class Hdf5Options(StrictOptions):
    path: str


@register("hdf5")
class Hdf5Dataset(Dataset):
    """An ann-benchmarks HDF5 file with its metric and its own ground truth."""

    Options = Hdf5Options
    description = "ann-benchmarks HDF5 file (train/test/neighbors/distances)"

    def load(self) -> VectorData:
        opt = self.options
        assert isinstance(opt, Hdf5Options)
        path = self.resolve(opt.path)
        ann = read_ann_hdf5(path)
        validate_vectors(ann.train, ann.test, ann.metric, str(path))
        if ann.neighbors is not None:
            check_neighbors(ann.neighbors, len(ann.train), len(ann.test), f"{path} neighbors")
        return VectorData(
            database=ann.train, queries=ann.test, metric=ann.metric,
            neighbors=ann.neighbors, distances=ann.distances,
            description={"file": str(path), **ann.attrs,
                         "binary_codes": ann.metric == "hamming"},
        )


class VectorFilesOptions(StrictOptions):
    database: str
    queries: str
    neighbors: str | None = None
    #: the files hold packed uint8 binary codes (8 bits a byte, MSB first) for hamming
    binary: bool = False


@register("vectors")
class VectorFilesDataset(Dataset):
    """Database and queries from vector files (.fvecs/.bvecs/.ivecs/.fbin/.u8bin/.i8bin/
    .ibin/.npy), optionally with a ground-truth file (.ivecs/.ibin/.npy)."""

    Options = VectorFilesOptions
    description = "vector files: fvecs, bvecs, ivecs, fbin, u8bin, i8bin, ibin, npy"

    def load(self) -> VectorData:
        opt = self.options
        assert isinstance(opt, VectorFilesOptions)
        db_path, q_path = self.resolve(opt.database), self.resolve(opt.queries)
        database, queries = read_vectors(db_path), read_vectors(q_path)
        for path, array in ((db_path, database), (q_path, queries)):
            if array.ndim != 2 or len(array) == 0:
                raise BenchError(f"{path}: expected a non-empty 2-D array, got {array.shape}")
        if database.shape[1] != queries.shape[1]:
            raise BenchError(
                f"database {db_path} has shape {database.shape} but queries {q_path} have "
                f"shape {queries.shape}: dimensions differ"
            )
        if opt.binary:
            for path, array in ((db_path, database), (q_path, queries)):
                if array.dtype != np.uint8:
                    raise BenchError(f"{path}: binary: true needs packed uint8 codes "
                                     f"(.u8bin/.bvecs/.npy), got {array.dtype}")
        check_finite(database, str(db_path))
        check_finite(queries, str(q_path))
        neighbors = None
        if opt.neighbors:
            nb_path = self.resolve(opt.neighbors)
            neighbors = read_vectors(nb_path)
            check_neighbors(neighbors, len(database), len(queries), str(nb_path))
        return VectorData(
            database=database, queries=queries, neighbors=neighbors,
            metric="hamming" if opt.binary else None,
            description={"database": str(db_path), "queries": str(q_path),
                         "neighbors": str(self.resolve(opt.neighbors)) if opt.neighbors else None,
                         "dtype": str(database.dtype), "binary_codes": opt.binary},
        )
