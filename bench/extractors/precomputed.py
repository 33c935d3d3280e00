"""Features computed elsewhere (the user's own model), read from files by item id.

Published retrieval experiments (TIRG, ComposeAE, COCO cross-modal) train models
the harness does not; what it must do is evaluate their features faithfully. The
readers here accept the formats such features are usually saved in:

- ``.npy`` (memory-mapped) and ``.npz`` (``key`` = features array, ``ids_key`` = ids);
- HDF5 (``key`` = dataset name; ids from ``ids_key`` or a JSON order file ``ids``);
- plain-text matrices (``.txt``, ``.csv``, ``.tsv``; ``id_column`` holds ids);
- Parquet (one list column ``key``, or scalar ``columns``; ``id_column`` holds ids).

Without ids, row numbers are the ids. Pickle files are refused: unpickling runs
whatever code the file contains, so a features file from elsewhere must come in
a format that only holds data. The one exception is the original study's layout,
``Features/<set>-<algo>_features.npy`` with the row names in an object array
``<set>-<algo>_map_to_names.npy``: that array is parsed by a reader that accepts
only strings (``bench.extractors.name_arrays``), so nothing in it is ever run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bench.core.errors import BenchError, MissingDependencyError
from bench.core.items import Item
from bench.core.options import StrictOptions
from bench.extractors import register
from bench.extractors.base import Extractor
from bench.extractors.name_arrays import read_name_array

PICKLE_SUFFIXES = (".pkl", ".pickle", ".p", ".joblib", ".pt", ".pth")
TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".dat")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
BLOCK = 4096
#: the original study's file names: <set>-<algo>_features.npy and its row names
STUDY_FEATURES = "_features.npy"
STUDY_NAMES = "_map_to_names.npy"

Format = Literal["auto", "npy", "npz", "hdf5", "text", "parquet"]


class FeatureFile(StrictOptions):
    """One file of features, with the ids of its rows."""

    path: str
    format: Format = "auto"
    key: str | None = Field(None, description="npz array / HDF5 dataset / Parquet list column")
    columns: list[str] | None = Field(None, description="Parquet scalar feature columns")
    ids: str | None = Field(None, description="JSON list or text file (one id a line) of ids")
    names: str | None = Field(None, description="a .npy array of row names, also an object "
                              "array of strings (parsed, never unpickled); default for "
                              "<x>_features.npy: <x>_map_to_names.npy beside it")
    ids_key: str | None = Field(None, description="npz array / HDF5 dataset holding the ids")
    id_column: str | int | None = Field(None, description="text column number / Parquet column")
    delimiter: str | None = Field(None, description="text files: default by suffix")
    prefix: str = Field("", description="prepended to every id, to tell two files' ids apart")


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise BenchError(
            f"{path}: refusing to read a pickle file: unpickling runs arbitrary code stored in "
            "the file; save the features with numpy.save / numpy.savez, HDF5 or Parquet instead"
        )


def _format(path: Path, fmt: Format) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz", ".parquet"):
        return suffix[1:]
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise BenchError(f"{path}: unknown features format {suffix!r}; expected .npy, .npz, .h5/.hdf5, "
                     ".txt/.csv/.tsv or .parquet (or set format)")


def _np_load(path: Path, mmap: bool = False) -> Any:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except EOFError:
        raise BenchError(f"{path}: empty or truncated numpy file") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise BenchError(f"{path}: holds Python objects, which only unpickling could read; "
                             "store plain numeric / string arrays instead") from None
        raise BenchError(f"{path}: not a readable numpy file: {exc}") from None


def _read_ids_file(path: Path) -> list[str]:
    if not path.is_file():
        raise BenchError(f"ids file {path} not found")
    refuse_pickle(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise BenchError(f"{path}: expected a JSON list of ids (the order of the rows)")
        return [str(x) for x in data]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pick(names: Sequence[str], key: str | None, path: Path, what: str,
          skip: tuple[str | None, ...] = ()) -> str:
    if key is not None:
        if key not in names:
            raise BenchError(f"{path}: no {what} {key!r}; found: {', '.join(names)}")
        return key
    for default in ("features", "embeddings", "vectors", "X"):
        if default in names:
            return default
    rest = [n for n in names if n not in skip and n not in ("ids", "id")]
    if len(rest) == 1:
        return rest[0]
    raise BenchError(f"{path}: several {what}s ({', '.join(names)}); set key to the features one")


def _npz_member(z: Any, path: Path, key: str) -> np.ndarray:
    """One array of an .npz: members load lazily, so an object array is refused here (its
    ValueError would otherwise surface as a traceback wherever it was first read)."""
    try:
        return z[key]
    except ValueError:
        raise BenchError(f"{path}: array {key!r} holds Python objects, which only unpickling "
                         "could read; store plain numeric / string arrays instead") from None
    except (OSError, EOFError) as exc:
        raise BenchError(f"{path}: array {key!r} cannot be read ({exc})") from None


def _read_npz(path: Path, spec: FeatureFile) -> tuple[np.ndarray, list[str] | None]:
    with _np_load(path) as z:
        names = list(z.files)
        key = _pick(names, spec.key, path, "array", skip=(spec.ids_key,))
        feats = _npz_member(z, path, key)
        ids_key = spec.ids_key or ("ids" if "ids" in names else None)
        ids = None
        if ids_key is not None:
            if ids_key not in names:
                raise BenchError(f"{path}: no array {ids_key!r}; found: {', '.join(names)}")
            ids = [str(x) for x in _npz_member(z, path, ids_key).tolist()]
    return feats, ids


def _read_hdf5(path: Path, spec: FeatureFile) -> tuple[np.ndarray, list[str] | None]:
    import h5py  # a core dependency (ann-benchmarks files need it too)

    with h5py.File(path, "r") as f:
        names = [n for n in f.keys() if isinstance(f[n], h5py.Dataset)]
        key = _pick(names, spec.key, path, "dataset", skip=(spec.ids_key,))
        feats = f[key][()]
        ids = None
        if spec.ids_key is not None:
            if spec.ids_key not in f:
                raise BenchError(f"{path}: no dataset {spec.ids_key!r}; found: {', '.join(names)}")
            ids = [x.decode() if isinstance(x, bytes) else str(x)
                   for x in f[spec.ids_key][()].tolist()]
    return feats, ids


def _read_text(path: Path, spec: FeatureFile) -> tuple[np.ndarray, list[str] | None]:
    delim = spec.delimiter or {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())
    rows = np.loadtxt(path, dtype=str, delimiter=delim, ndmin=2, comments="#")
    ids = None
    if spec.id_column is not None:
        col = int(spec.id_column)
        if not -rows.shape[1] <= col < rows.shape[1]:
            raise BenchError(f"{path}: id_column {col} outside the {rows.shape[1]} columns")
        ids = rows[:, col].tolist()
        rows = np.delete(rows, col, axis=1)
    try:
        feats = rows.astype(np.float32)
    except ValueError as exc:
        raise BenchError(f"{path}: non-numeric feature value ({exc}); set id_column for an "
                         "id column") from None
    return feats, ids


def _read_parquet(path: Path, spec: FeatureFile) -> tuple[np.ndarray, list[str] | None]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet", "Parquet feature files") from None
    table = pq.read_table(path)
    names = table.column_names
    ids = None
    if spec.id_column is not None:
        if str(spec.id_column) not in names:
            raise BenchError(f"{path}: no column {spec.id_column!r}; found: {', '.join(names)}")
        ids = [str(x) for x in table.column(str(spec.id_column)).to_pylist()]
    if spec.columns:
        missing = [c for c in spec.columns if c not in names]
        if missing:
            raise BenchError(f"{path}: no column {missing[0]!r}; found: {', '.join(names)}")
        feats = np.column_stack([table.column(c).to_numpy() for c in spec.columns])
    else:
        key = _pick(names, spec.key, path, "column", skip=(str(spec.id_column),))
        column = table.column(key).combine_chunks()
        try:
            feats = np.stack(column.to_numpy(zero_copy_only=False))
        except ValueError as exc:
            raise BenchError(f"{path}: column {key!r} is not a list of equal-length vectors: "
                             f"{exc}") from None
    return feats, ids


_READERS: dict[str, Callable[[Path, FeatureFile], tuple[np.ndarray, list[str] | None]]] = {
    "npz": _read_npz, "hdf5": _read_hdf5, "text": _read_text, "parquet": _read_parquet,
}


def read_feature_file(spec: FeatureFile, base_dir: Path | None = None,
                      ) -> tuple[list[str], np.ndarray]:
    """(ids, features (n, d)) of one file; .npy stays memory-mapped."""
    path = Path(spec.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    refuse_pickle(path)
    if not path.is_file():
        raise BenchError(f"features file {path} not found")
    fmt = _format(path, spec.format)
    if fmt == "npy":
        feats, ids = _np_load(path, mmap=True), None
    else:
        feats, ids = _READERS[fmt](path, spec)
    if feats.ndim != 2:
        raise BenchError(f"{path}: features must be 2-d (items x dim), got shape {feats.shape}")
    if not (np.issubdtype(feats.dtype, np.floating) or np.issubdtype(feats.dtype, np.integer)):
        raise BenchError(f"{path}: features must be numeric, got dtype {feats.dtype}")
    names = _names_path(path, spec, base_dir)
    if names is not None:
        if ids is not None or spec.ids is not None:
            raise BenchError(f"{path}: ids given twice (names and ids)")
        ids = read_name_array(names)
    if spec.ids is not None:
        if ids is not None:
            raise BenchError(f"{path}: ids given twice (ids file and ids inside the file)")
        ids_path = Path(spec.ids).expanduser()
        if not ids_path.is_absolute() and base_dir is not None:
            ids_path = base_dir / ids_path
        ids = _read_ids_file(ids_path)
    if ids is None:
        ids = [str(i) for i in range(len(feats))]
    if len(ids) != len(feats):
        raise BenchError(f"{path}: {len(ids)} ids for {len(feats)} feature rows")
    ids = [spec.prefix + i for i in ids]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise BenchError(f"{path}: id {dup!r} appears more than once")
    return ids, feats


def _names_path(path: Path, spec: FeatureFile, base_dir: Path | None) -> Path | None:
    """``names`` as given, or the study's ``<x>_map_to_names.npy`` beside ``<x>_features.npy``
    when neither names nor ids are given."""
    if spec.names is not None:
        names = Path(spec.names).expanduser()
        names = base_dir / names if not names.is_absolute() and base_dir is not None else names
        if not names.is_file():
            raise BenchError(f"names file {names} not found")
        return names
    if spec.ids is None and path.name.endswith(STUDY_FEATURES):
        sibling = path.with_name(path.name[: -len(STUDY_FEATURES)] + STUDY_NAMES)
        return sibling if sibling.is_file() else None
    return None


def file_signature(spec: FeatureFile, base_dir: Path | None = None) -> dict[str, Any]:
    """What identifies a file's content cheaply: path, size, modification time."""
    out = {}
    path = Path(spec.path).expanduser()
    path = base_dir / path if not path.is_absolute() and base_dir is not None else path
    names = _names_path(path, spec, base_dir) if path.is_file() else None
    for name in (spec.path, spec.ids, str(names) if names is not None else None):
        if name is None:
            continue
        p = Path(name).expanduser()
        p = base_dir / p if not p.is_absolute() and base_dir is not None else p
        st = os.stat(p) if p.exists() else None
        out[str(p.resolve())] = [st.st_size, st.st_mtime_ns] if st else None
    return out


class PrecomputedOptions(StrictOptions):
    files: list[FeatureFile] = Field(min_length=1, description="union of id -> feature rows")


@register("precomputed")
class PrecomputedExtractor(Extractor):
    """Looks up each item's features by its id in the given files (relative paths resolve
    against the working directory); items without features are skipped and reported."""

    Options = PrecomputedOptions
    modality = "vector"
    family = "float"

    def __init__(self, options: PrecomputedOptions) -> None:
        super().__init__(options)
        self._table: tuple[dict[str, tuple[int, int]], list[np.ndarray]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_table": None}

    def _load(self) -> tuple[dict[str, tuple[int, int]], list[np.ndarray]]:
        if self._table is None:
            index: dict[str, tuple[int, int]] = {}
            arrays: list[np.ndarray] = []
            o: PrecomputedOptions = self.options  # type: ignore[assignment]
            for fi, spec in enumerate(o.files):
                ids, feats = read_feature_file(spec)
                if arrays and feats.shape[1] != arrays[0].shape[1]:
                    raise BenchError(f"{spec.path}: dimension {feats.shape[1]} differs from "
                                     f"{o.files[0].path} ({arrays[0].shape[1]})")
                for row, item_id in enumerate(ids):
                    if item_id in index:
                        raise BenchError(f"{spec.path}: id {item_id!r} is also in "
                                         f"{o.files[index[item_id][0]].path}; set prefix")
                    index[item_id] = (fi, row)
                arrays.append(feats)
            self._table = (index, arrays)
        return self._table

    @property
    def dim(self) -> int:
        return int(self._load()[1][0].shape[1])

    def fingerprint(self) -> dict[str, Any]:
        o: PrecomputedOptions = self.options  # type: ignore[assignment]
        return {**super().fingerprint(), "files": [file_signature(f) for f in o.files]}

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        raise BenchError("precomputed features are looked up by item id, not computed from "
                         "decoded items")

    def run_pipeline(
        self, items: Sequence[Item],
        on_batch: Callable[[np.ndarray, np.ndarray, list[tuple[int, str]]], None], *,
        workers: int,
    ) -> bool:
        index, arrays = self._load()
        for start in range(0, len(items), BLOCK):
            kept: list[int] = []
            rows: list[np.ndarray] = []
            skipped: list[tuple[int, str]] = []
            for pos in range(start, min(start + BLOCK, len(items))):
                where = index.get(items[pos].id)
                if where is None:
                    skipped.append((pos, f"no precomputed feature for id {items[pos].id!r}"))
                else:
                    kept.append(pos)
                    rows.append(np.asarray(arrays[where[0]][where[1]], dtype=np.float32))
            feats = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
            on_batch(np.asarray(kept, np.int64), feats, skipped)
        return True
