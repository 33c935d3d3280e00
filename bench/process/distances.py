"""Distances shown on gallery tiles, read from what the run stage saved.

`bench process` reads results/<name>/ only: each run saves the exact distances of
its returned ids (``distances_file``, beside ``neighbors_file``) and each identity
feature set the distance of every query to its original
(``original_distances_file`` in the feature set's description). Both follow the
harness's exact float64 convention (L2 not squared, 1 - cosine, -dot, bit count).
Results written before these files existed simply show no distance on the tiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _load(folder: Path, name: Any, n_rows: int) -> np.ndarray | None:
    if not isinstance(name, str):
        return None
    try:
        saved = np.load(folder / name, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return saved if len(saved) == n_rows else None


def neighbour_distances(results: dict[str, Any], run: pd.Series, desc: dict[str, Any],
                        ids: np.ndarray, rows: np.ndarray, originals: dict[int, int | None]
                        ) -> dict[int, np.ndarray]:
    """row -> k + 1 distances: the k neighbours, then the true original (NaN if none)."""
    if len(rows) == 0:
        return {}
    folder = Path(results["_path"]).parent
    k = ids.shape[1]
    saved = _load(folder, run.get("distances_file"), len(ids))
    if saved is None or saved.ndim != 2:
        return {}
    near = np.full((len(rows), k), np.nan)
    width = min(k, saved.shape[1])
    near[:, :width] = np.asarray(saved[rows, :width], dtype=float)
    to_original = np.full((len(rows), 1), np.nan)
    per_query = _load(folder, desc.get("original_distances_file"), len(ids))
    if per_query is not None and per_query.ndim == 1:
        has = np.array([originals.get(int(r)) is not None for r in rows])
        to_original[has, 0] = np.asarray(per_query[rows[has]], dtype=float)
    d = np.concatenate([near, to_original], axis=1)
    return {int(r): d[i] for i, r in enumerate(rows)}
