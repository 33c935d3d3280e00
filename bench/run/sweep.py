"""The sweep axes of a search run: one feature set per (extractor, metric, database size).

Database sizes are nested prefixes of one seeded order of the database, so the
10k database is the first 10k rows of the 100k one and a curve over sizes measures
growth, not a different sample at each size. For identity data every original (a
database item whose identity some query has) comes first, so every size can still
find every query's copy, and the distractors follow in the seeded order. Each size
is its own prepared file with its own fingerprint, so its exact ground truth is
computed once and cached like any other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.config.experiment import Experiment
from bench.core.errors import BenchError
from bench.core.files import atomic_save_npy
from bench.core.fingerprint import fingerprint_obj
from bench.features.prepare import FeatureSet

#: rows gathered at once when writing a permuted prefix (bounded memory on big sets)
GATHER_ROWS = 65536


def feature_set_key(fs: FeatureSet) -> str:
    """The set's name in results.json: the extractor (or ``vectors``), plus the swept
    axes, so an experiment without sweeps keeps the names it always had."""
    key = fs.extractor or "vectors"
    if "metric" in fs.sweep:
        key += f"@{fs.sweep['metric']}"
    if "n_database" in fs.sweep:
        key += f"@n{fs.sweep['n_database']}"
    return key


def database_order(fs: FeatureSet, seed: int) -> tuple[np.ndarray, int]:
    """(row order, number of originals first): originals, then distractors, each in one
    seeded shuffle. Originals exist only when queries and database carry identities."""
    n = len(fs.database)
    rng = np.random.default_rng([seed, 0x512E])
    shuffled = rng.permutation(n)
    identities = {it.identity for it in fs.query_items or [] if it.identity is not None}
    if not identities or not fs.database_items:
        return shuffled, 0
    original = np.array([fs.database_items[i].identity in identities for i in shuffled])
    return np.concatenate([shuffled[original], shuffled[~original]]), int(original.sum())


def database_prefixes(fs: FeatureSet, sizes: list[int], seed: int,
                      cache_dir: Path) -> list[FeatureSet]:
    """One feature set per size: the first ``size`` rows of :func:`database_order`."""
    n = len(fs.database)
    where = fs.description.get("file") or feature_set_key(fs)
    too_big = [s for s in sizes if s > n]
    if too_big:
        raise BenchError(f"database_sizes: {too_big[0]} is larger than the database of "
                         f"{where} ({n} rows)")
    order, n_originals = database_order(fs, seed)
    if sizes[0] < n_originals:
        raise BenchError(f"database_sizes: {sizes[0]} is below the {n_originals} originals "
                         f"the queries of {where} need (they are always kept)")
    out = []
    for size in sizes:
        fp = fingerprint_obj({"parent": fs.fingerprint, "order_seed": seed, "rows": size,
                              "originals_first": n_originals})
        path = cache_dir / "prepared" / f"{fp}-database.npy"
        if not path.exists():
            atomic_save_npy(path, _gather(fs.database, order[:size]))
        items = ([fs.database_items[i] for i in order[:size]] if fs.database_items
                 else fs.database_items)
        description: dict[str, Any] = {
            **fs.description, "n_database": size, "fingerprint": fp,
            "database_order": {"seed": seed, "parent_fingerprint": fs.fingerprint,
                               "parent_rows": n, "originals_first": n_originals},
        }
        out.append(replace(fs, database=np.load(path, mmap_mode="r"), database_path=path,
                           fingerprint=fp, source_neighbors=None, database_items=items,
                           description=description, sweep={**fs.sweep, "n_database": size}))
    return out


def _gather(database: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), database.shape[1]), dtype=database.dtype)
    for s in range(0, len(rows), GATHER_ROWS):  # sorted reads of the memory map
        chunk = rows[s : s + GATHER_ROWS]
        ascending = np.argsort(chunk)
        out[s + ascending] = database[chunk[ascending]]
    return out


def expand_sets(exp: Experiment, sets: list[FeatureSet], cache_dir: Path) -> list[FeatureSet]:
    """Tag the sets of a metric sweep, then split each into its database sizes."""
    if len(exp.metrics) > 1:
        for fs in sets:
            fs.sweep = {**fs.sweep, "metric": fs.metric}
    if not exp.database_sizes:
        return sets
    return [p for fs in sets
            for p in database_prefixes(fs, exp.database_sizes, exp.seed, cache_dir)]
