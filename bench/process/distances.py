"""Distances shown on gallery tiles.

Neighbour files hold ids only, so the distances are recomputed for the few
drawn queries from the prepared feature arrays the run left in the cache
(``<cache>/prepared/<fingerprint>-{database,queries}.npy``), with the harness's
own exact float64 convention (L2 not squared, 1 - cosine, -dot, bit count).
A run that saved its own ``distances_file`` is the fallback; with neither, the
tiles simply show no distance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.errors import BenchError


def _prepared(desc: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    from bench.core.paths import cache_root

    fp = desc.get("fingerprint")
    if not fp:
        return None
    folder = cache_root() / "prepared"
    db_path, q_path = folder / f"{fp}-database.npy", folder / f"{fp}-queries.npy"
    if not (db_path.exists() and q_path.exists()):
        return None
    try:
        return (np.load(db_path, mmap_mode="r", allow_pickle=False),
                np.load(q_path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError):
        return None


def neighbour_distances(results: dict[str, Any], run: pd.Series, desc: dict[str, Any],
                        ids: np.ndarray, rows: np.ndarray, originals: dict[int, int | None]
                        ) -> dict[int, np.ndarray]:
    """row -> k + 1 distances: the k neighbours, then the true original (NaN if none)."""
    if len(rows) == 0:
        return {}
    k = ids.shape[1]
    arrays = _prepared(desc)
    if arrays is not None:
        from bench.groundtruth.exact import exact_distances

        db, queries = arrays
        orig = np.array([[originals.get(int(r)) if originals.get(int(r)) is not None else -1]
                         for r in rows], dtype=np.int64)
        wanted = np.concatenate([ids[rows], orig], axis=1)
        try:
            if len(queries) == len(ids):
                d = exact_distances(db, np.ascontiguousarray(queries[rows]), wanted,
                                    str(run.get("metric") or desc.get("metric") or ""))
                return {int(r): d[i] for i, r in enumerate(rows)}
        except BenchError:
            pass
    name = run.get("distances_file")
    if isinstance(name, str):
        path = Path(results["_path"]).parent / name
        try:
            saved = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return {}
        if saved.ndim == 2 and len(saved) == len(ids):
            pad = np.full((len(rows), 1), np.nan)
            d = np.concatenate([np.asarray(saved[rows, :k], dtype=float), pad], axis=1)
            return {int(r): d[i] for i, r in enumerate(rows)}
    return {}
