"""From a dataset to the prepared feature sets that backends search.

One feature set per extractor (or one for vector datasets). Preparing means:
validate (NaN, dimension, dtype), L2-normalise for angular, scale rows to sum 1
for jensen-shannon, convert to
C-contiguous float32 (or packed uint8 codes for hamming), and save once to the
cache as .npy so every worker memory-maps the same bytes instead of receiving
a pickle. Exact ground truth and its float64 distances travel with the set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.core.files import atomic_save_npy
from bench.core.fingerprint import fingerprint_array, fingerprint_obj
from bench.core.items import Item
from bench.datasets.base import ItemData, VectorData

BLOCK_ROWS = 65536


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
    background: np.ndarray | None = None  # prepared like the database; never searched

    @property
    def dim(self) -> int:
        """Dimension as backends see it: bits for hamming codes."""
        return self.database.shape[1] * (8 if self.metric == "hamming" else 1)


def _prepare_array(array: np.ndarray, metric: str, what: str) -> np.ndarray:
    if metric == "hamming":
        if array.dtype != np.uint8:
            raise BenchError(
                f"{what}: metric hamming needs packed uint8 binary codes, got {array.dtype} "
                "(use a hash extractor or binary: true)"
            )
        return np.ascontiguousarray(array)
    if what.endswith("(binary codes)"):
        raise BenchError(f"{what}: binary codes need metric hamming")
    out = np.empty(array.shape, dtype=np.float32)
    for start in range(0, len(array), BLOCK_ROWS):
        block = np.asarray(array[start : start + BLOCK_ROWS], dtype=np.float32)
        if not np.isfinite(block).all():
            bad = start + int(np.nonzero(~np.isfinite(block).all(axis=1))[0][0])
            raise BenchError(f"{what}: row {bad} contains NaN or infinite values")
        if metric == "angular":
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            if (norms == 0).any():
                bad = start + int(np.nonzero(norms[:, 0] == 0)[0][0])
                raise BenchError(f"{what}: row {bad} is a zero vector, which has no angle")
            block = block / norms
        elif metric == "jensen-shannon":
            block = _distributions(block, start, what)
        out[start : start + len(block)] = block
    return out


def _distributions(block: np.ndarray, start: int, what: str) -> np.ndarray:
    """Rows scaled to sum 1: Jensen-Shannon compares distributions (Faiss does not
    scale, so unscaled rows would make its figures and ours disagree)."""
    if (block < 0).any():
        bad = start + int(np.nonzero((block < 0).any(axis=1))[0][0])
        raise BenchError(f"{what}: row {bad} has negative values; metric jensen-shannon "
                         "needs non-negative features")
    sums = block.sum(axis=1, keepdims=True, dtype=np.float64)
    if (sums == 0).any():
        bad = start + int(np.nonzero(sums[:, 0] == 0)[0][0])
        raise BenchError(f"{what}: row {bad} is all zeros, which is no distribution "
                         "(metric jensen-shannon)")
    return (block / sums).astype(np.float32)


def prepare_vectors(
    data: VectorData, metric: str, *, extractor: str | None, source: str,
    max_queries: int | None, cache_dir: Path,
) -> FeatureSet:
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
    binary = bool(data.description.get("binary_codes")) or data.metric == "hamming"
    suffix = " (binary codes)" if binary and metric != "hamming" else ""
    db_p = _prepare_array(db, metric, f"{source} database{suffix}")
    q_p = _prepare_array(q, metric, f"{source} queries{suffix}")
    fp = fingerprint_obj(
        {"database": fingerprint_array(db_p), "queries": fingerprint_array(q_p), "metric": metric}
    )
    folder = cache_dir / "prepared"
    db_path = folder / f"{fp}-database.npy"
    q_path = folder / f"{fp}-queries.npy"
    if not db_path.exists():
        atomic_save_npy(db_path, db_p)
    if not q_path.exists():
        atomic_save_npy(q_path, q_p)
    background = None
    if data.background is not None and len(data.background):
        background = _prepare_array(data.background, metric, f"{source} background{suffix}")
    source_neighbors = None
    if neighbors is not None and (data.metric is None or data.metric == metric):
        source_neighbors = np.asarray(neighbors, dtype=np.int64)
    return FeatureSet(
        extractor=extractor, metric=metric,
        database=np.load(db_path, mmap_mode="r"), queries=np.load(q_path, mmap_mode="r"),
        database_path=db_path, queries_path=q_path, fingerprint=fp,
        source_neighbors=source_neighbors,
        database_items=data.database_items, query_items=query_items,
        description={**data.description, "n_database": len(db_p), "n_queries": len(q_p),
                     "dim": int(db_p.shape[1]) * (8 if metric == "hamming" else 1),
                     "dtype": str(db_p.dtype), "fingerprint": fp,
                     "declared_metric": data.metric,
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
    if items.background:
        parts.append(("background", items.background))
    for part, part_items in parts:
        got = extract(extractor, part_items, cache_dir=cache_dir,
                      dataset_fingerprint=f"{dataset_fp}-{part}", progress=progress)
        kept_items = [part_items[i] for i in np.asarray(got.kept)]
        out.append((got.features, kept_items))
        skipped.extend(got.skipped)
    (db, db_items), (q, q_items) = out[:2]
    background = np.asarray(out[2][0]) if len(out) > 2 else None
    # Datasets list originals before distractors, and libraries break distance ties
    # towards lower ids: with coarse distances (64-bit hashes) that order alone
    # would lift recall@1 of an unshuffled database. A seeded permutation makes
    # ties fall where chance puts them, and is recorded.
    order = np.random.default_rng(seed).permutation(len(db_items))
    db = np.asarray(db)[order]
    db_items = [db_items[i] for i in order]
    data = VectorData(
        database=db, queries=q, database_items=db_items, query_items=q_items,
        description={**items.description, "extractor": extractor.fingerprint(),
                     "database_shuffle_seed": seed,
                     "binary_codes": db.dtype == np.uint8 and extractor.family == "binary"},
        background=background,
    )
    return data, skipped
