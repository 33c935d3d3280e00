"""From a dataset to the prepared feature sets that backends search.

One feature set per extractor (or one for vector datasets). Preparing means:
validate (NaN, dimension, dtype), L2-normalise for angular, scale rows to sum 1
for jensen-shannon, convert to
C-contiguous float32 (or packed uint8 codes for hamming), and write once to the
cache as .npy, block by block into a memory map, so every worker memory-maps the
same bytes instead of receiving a pickle and no stage holds a copy in memory
(angular data is stored normalised: nothing normalises it again). Exact ground
truth and its float64 distances travel with the set.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.core.files import atomic_write_json, reserve_disk, temp_file
from bench.core.fingerprint import fingerprint_array, fingerprint_obj
from bench.core.items import Item
from bench.datasets.base import ItemData, VectorData

#: bytes of float32 rows prepared at once
BLOCK_BYTES = 64 << 20
#: bump when preparation changes what it writes: the source -> prepared index is keyed by it
PREPARED_VERSION = 1


@dataclass
class FeatureSet:
    extractor: str | None
    metric: str
    database: np.ndarray
    queries: np.ndarray
    database_path: Path
    queries_path: Path
    fingerprint: str
    source_neighbors: np.ndarray | None = None
    database_items: list[Item] | None = None
    query_items: list[Item] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)
    gt_ids: np.ndarray | None = None
    gt_dist: np.ndarray | None = None  # float64 exact distances of gt_ids
    #: the swept axes this set stands for ({"metric": ..., "n_database": ...}); empty
    #: when the experiment sweeps nothing (bench.run.sweep)
    sweep: dict[str, Any] = field(default_factory=dict)
    background: np.ndarray | None = None  # prepared like the database; never searched

    @property
    def dim(self) -> int:
        """Dimension as backends see it: bits for hamming codes."""
        return self.database.shape[1] * (8 if self.metric == "hamming" else 1)


def _target_dtype(array: np.ndarray, metric: str, what: str) -> np.dtype:
    if metric == "hamming":
        if array.dtype != np.uint8:
            raise BenchError(
                f"{what}: metric hamming needs packed uint8 binary codes, got {array.dtype} "
                "(use a hash extractor or binary: true)"
            )
        return np.dtype(np.uint8)
    if what.endswith("(binary codes)"):
        raise BenchError(f"{what}: binary codes need metric hamming")
    return np.dtype(np.float32)


def _prepare_block(block: np.ndarray, dtype: np.dtype, metric: str, what: str,
                   rows: np.ndarray) -> np.ndarray:
    """One block checked and converted; ``rows`` are the source rows, for error lines."""
    if dtype == np.uint8:
        return np.asarray(block)
    block = np.asarray(block, dtype=np.float32)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        bad = int(rows[np.nonzero(~finite)[0][0]])
        raise BenchError(f"{what}: row {bad} contains NaN or infinite values")
    if metric == "angular":
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        if (norms == 0).any():
            bad = int(rows[np.nonzero(norms[:, 0] == 0)[0][0]])
            raise BenchError(f"{what}: row {bad} is a zero vector, which has no angle")
        block = block / norms
    elif metric == "jensen-shannon":
        block = _distributions(block, rows, what)
    return block


def _blocks(n: int, width: int, order: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
    """(first output row, source rows) of each block of about BLOCK_BYTES of float32."""
    step = max(1, BLOCK_BYTES // max(1, width * 4))
    for start in range(0, n, step):
        yield start, (np.arange(start, min(n, start + step)) if order is None
                      else order[start : start + step])


def _take(array: np.ndarray, start: int, rows: np.ndarray, ordered: bool) -> np.ndarray:
    return np.asarray(array[rows] if ordered else array[start : start + len(rows)])


def _prepare_array(array: np.ndarray, metric: str, what: str) -> np.ndarray:
    """In memory, for small sets (the background); the database and queries go to files."""
    dtype = _target_dtype(array, metric, what)
    out = np.empty(array.shape, dtype=dtype)
    for start, rows in _blocks(len(array), array.shape[1], None):
        out[start : start + len(rows)] = _prepare_block(
            _take(array, start, rows, False), dtype, metric, what, rows)
    return out


def _prepare_to_file(array: np.ndarray, metric: str, what: str, folder: Path,
                     order: np.ndarray | None = None) -> Path:
    """``array`` (rows taken in ``order`` if given) validated and converted block by
    block into a new .npy memory map in ``folder``; its (temporary) path.

    Nothing of the size of the array is ever in memory: at 500,000 x 4,096 the prepared
    float32 array alone is 8 GB, and the driver used to hold it beside the source until
    it was saved. Written under a temporary name and synced; the caller renames it."""
    dtype = _target_dtype(array, metric, what)
    n = len(array) if order is None else len(order)
    tmp = temp_file(folder, ".prepare-", ".npy")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, array.shape[1]))
        reserve_disk(tmp)
        for start, rows in _blocks(n, array.shape[1], order):
            out[start : start + len(rows)] = _prepare_block(
                _take(array, start, rows, order is not None), dtype, metric, what, rows)
        out.flush()
        del out
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _distributions(block: np.ndarray, rows: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to sum 1: Jensen-Shannon compares distributions (Faiss does not
    scale, so unscaled rows would make its figures and ours disagree)."""
    if (block < 0).any():
        bad = int(rows[np.nonzero((block < 0).any(axis=1))[0][0]])
        raise BenchError(f"{what}: row {bad} has negative values; metric jensen-shannon "
                         "needs non-negative features")
    sums = block.sum(axis=1, keepdims=True, dtype=np.float64)
    if (sums == 0).any():
        bad = int(rows[np.nonzero(sums[:, 0] == 0)[0][0]])
        raise BenchError(f"{what}: row {bad} is all zeros, which is no distribution "
                         "(metric jensen-shannon)")
    return (block / sums).astype(np.float32)


def _source_key(db: np.ndarray, q: np.ndarray, metric: str, binary: bool,
                order: np.ndarray | None) -> str:
    """What the prepared arrays are made from: a re-run with the same source (content
    fingerprints, sampled for big arrays as for every cache) reuses them unwritten."""
    return fingerprint_obj({
        "version": PREPARED_VERSION, "database": fingerprint_array(db),
        "queries": fingerprint_array(q), "metric": metric, "binary": binary,
        "order": None if order is None else fingerprint_array(order),
    })


def _reuse(index: Path, folder: Path) -> str | None:
    try:
        fp = str(json.loads(index.read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (folder / f"{fp}-database.npy").is_file() and (folder / f"{fp}-queries.npy").is_file():
        return fp
    return None


def _write_prepared(db: np.ndarray, q: np.ndarray, metric: str, source: str, suffix: str,
                    folder: Path, order: np.ndarray | None) -> str:
    """Prepared files written and renamed to their content fingerprint; that fingerprint."""
    tmps = [_prepare_to_file(db, metric, f"{source} database{suffix}", folder, order)]
    try:
        tmps.append(_prepare_to_file(q, metric, f"{source} queries{suffix}", folder))
        fp = fingerprint_obj({
            "database": fingerprint_array(np.load(tmps[0], mmap_mode="r")),
            "queries": fingerprint_array(np.load(tmps[1], mmap_mode="r")),
            "metric": metric,
        })
        for tmp, part in zip(tmps, ("database", "queries"), strict=True):
            final = folder / f"{fp}-{part}.npy"
            if not final.exists():
                os.replace(tmp, final)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return fp


def prepare_vectors(
    data: VectorData, metric: str, *, extractor: str | None, source: str,
    max_queries: int | None, cache_dir: Path, shuffle_seed: int | None = None,
) -> FeatureSet:
    """Prepared, memory-mapped database and queries of ``data`` for ``metric``.

    ``shuffle_seed`` permutes the database rows (and items) with a seeded permutation,
    applied while the prepared file is written (see ``extract_item_features``)."""
    db, q = data.database, data.queries
    if db.ndim != 2 or q.ndim != 2:
        raise BenchError(
            f"{source}: database and queries must be 2-D, got {db.shape} and {q.shape}"
        )
    if db.shape[1] != q.shape[1]:
        raise BenchError(
            f"{source}: queries have dimension {q.shape[1]} but the database has {db.shape[1]}"
        )
    if len(db) == 0 or len(q) == 0:
        raise BenchError(f"{source}: empty database ({len(db)}) or query set ({len(q)})")
    query_items = data.query_items
    neighbors = data.neighbors
    if max_queries is not None and len(q) > max_queries:
        q = q[:max_queries]
        query_items = query_items[:max_queries] if query_items else query_items
        neighbors = neighbors[:max_queries] if neighbors is not None else None
    database_items = data.database_items
    order = None
    shuffle: dict[str, Any] = {}
    if shuffle_seed is not None:
        # Datasets list originals before distractors, and libraries break distance ties
        # towards lower ids: with coarse distances (64-bit hashes) that order alone
        # would lift recall@1 of an unshuffled database. A seeded permutation makes
        # ties fall where chance puts them, and is recorded.
        order = np.random.default_rng(shuffle_seed).permutation(len(db))
        database_items = [database_items[i] for i in order] if database_items else None
        shuffle = {"database_shuffle_seed": shuffle_seed}
    binary = bool(data.description.get("binary_codes")) or data.metric == "hamming"
    suffix = " (binary codes)" if binary and metric != "hamming" else ""
    folder = cache_dir / "prepared"
    index = folder / f"source-{_source_key(db, q, metric, binary, order)}.json"
    fp = _reuse(index, folder)
    if fp is None:
        fp = _write_prepared(db, q, metric, source, suffix, folder, order)
        atomic_write_json(index, {"fingerprint": fp})
    db_path = folder / f"{fp}-database.npy"
    q_path = folder / f"{fp}-queries.npy"
    db_p, q_p = np.load(db_path, mmap_mode="r"), np.load(q_path, mmap_mode="r")
    background = None
    if data.background is not None and len(data.background):
        background = _prepare_array(data.background, metric, f"{source} background{suffix}")
    source_neighbors = None
    if neighbors is not None and (data.metric is None or data.metric == metric):
        source_neighbors = np.asarray(neighbors, dtype=np.int64)
    return FeatureSet(
        extractor=extractor, metric=metric, database=db_p, queries=q_p,
        database_path=db_path, queries_path=q_path, fingerprint=fp,
        source_neighbors=source_neighbors,
        database_items=database_items, query_items=query_items,
        description={**data.description, **shuffle, "n_database": len(db_p),
                     "n_queries": len(q_p),
                     "dim": int(db_p.shape[1]) * (8 if metric == "hamming" else 1),
                     "dtype": str(db_p.dtype), "data_bytes": int(db_p.nbytes),
                     "fingerprint": fp, "declared_metric": data.metric,
                     **({"n_background": len(background)} if background is not None else {})},
        background=background,
    )


def extract_item_features(
    items: ItemData, section: Any, *, cache_dir: Path, workers: int, progress: bool, seed: int,
    executor: str = "local",
) -> tuple[VectorData, list[tuple[str, str]]]:
    """Run an extractor over the dataset's items (cached by the feature store; with the
    ray executor, shards run as Ray tasks and write the same cache chunks)."""
    from bench.extractors import registry
    from bench.features.store import extract_features

    cls = registry.get(section.name)
    extractor = cls(cls.Options.model_validate(section.options()))
    if extractor.modality != items.modality and extractor.modality != "vector":
        raise BenchError(
            f"extractor {section.name} reads {extractor.modality} items, but the dataset "
            f"yields {items.modality} items"
        )
    if executor == "ray":
        from bench.features.ray_map import extract_features_ray as extract
    else:
        extract = functools.partial(extract_features, workers=workers)
    dataset_fp = fingerprint_obj(items.description)
    out = []
    skipped: list[tuple[str, str]] = []
    parts = [("database", items.database), ("queries", items.queries)]
    for part in ("background", "training"):  # separate sets: never searched
        if getattr(items, part):
            parts.append((part, getattr(items, part)))
    extra: dict[str, np.ndarray] = {}
    for part, part_items in parts:
        got = extract(extractor, part_items, cache_dir=cache_dir,
                      dataset_fingerprint=f"{dataset_fp}-{part}", progress=progress)
        kept_items = [part_items[i] for i in np.asarray(got.kept)]
        out.append((got.features, kept_items))
        skipped.extend(got.skipped)
        if part in ("background", "training"):
            extra[part] = np.asarray(got.features)
    (db, db_items), (q, q_items) = out[:2]
    # in item order, memory-mapped from the store: the caller passes ``shuffle_seed`` to
    # prepare_vectors, which applies the seeded database shuffle while it writes (a
    # fancy-indexed permutation here was a full copy of the features in memory)
    data = VectorData(
        database=db, queries=q, database_items=db_items, query_items=q_items,
        description={**items.description, "extractor": extractor.fingerprint(),
                     "binary_codes": db.dtype == np.uint8 and extractor.family == "binary"},
        background=extra.get("background"), training=extra.get("training"),
    )
    return data, skipped
