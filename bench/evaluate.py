"""Score one run's neighbour ids: k-NN recall two ways, and identity hit rates.

The harness recomputes exact float64 distances of the returned ids itself, so a
backend's own distance convention (squared or not, similarity or distance)
can never change its recall.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

import numpy as np

from bench.datasets.base import Item
from bench.errors import BenchError
from bench.groundtruth import exact_distances
from bench.metrics import check_no_duplicates, id_recall, tie_aware_recall


def knn_scores(
    ids: np.ndarray, k: int, *, database: np.ndarray, queries: np.ndarray,
    gt_ids: np.ndarray, gt_dist: np.ndarray, metric: str,
) -> dict[str, float]:
    ids = ids[:, :k]
    check_no_duplicates(ids)
    dist = exact_distances(database, queries, ids, metric)
    recall = tie_aware_recall(dist, gt_dist[:, :k], k)
    idr = id_recall(ids, gt_ids, k)
    return {
        "recall": float(recall.mean()),
        "id_recall": float(idr.mean()),
        "recall_p5": float(np.percentile(recall, 5)),
        "recall_min": float(recall.min()),
    }


class Judge(Protocol):
    """Scores one run's ids against a relevance rule; the runner merges the dict
    into the run record."""

    def scores(self, ids: np.ndarray, k: int) -> dict[str, Any]: ...


def make_judge(loaded: Any, fs: Any) -> Judge | None:
    """The judge for the experiment's ``relevance`` setting (None for plain k-NN)."""
    exp = loaded.experiment
    mode = exp.relevance if isinstance(exp.relevance, str) else exp.relevance.get("mode")
    if mode == "knn":
        return None
    if mode == "identity":
        if not fs.database_items or not fs.query_items:
            raise BenchError(
                f"{loaded.source}: relevance identity needs items with identities; "
                f"dataset {exp.dataset.name} provides none"
            )
        return IdentityJudge(fs.database_items, fs.query_items)
    raise BenchError(f"{loaded.source}: relevance: unknown mode {mode!r}; expected knn or identity")


class IdentityJudge:
    """Identity relevance: a query is correct at k when a top-k item shares its identity.

    Identities are mapped to integer codes once, so judging 10k x 100 results is
    one fancy-indexing operation.
    """

    def __init__(self, database_items: list[Item], query_items: list[Item]) -> None:
        codes: dict[str, int] = {}
        self.db_codes = np.array(
            [codes.setdefault(it.identity or f"\0{it.id}", len(codes)) for it in database_items],
            dtype=np.int64,
        )
        self.q_codes = np.array(
            [codes.get(it.identity or "", -2) for it in query_items], dtype=np.int64
        )
        self.has_original = np.isin(self.q_codes, self.db_codes)
        self.groups: dict[str, list[str]] = {
            key: [str(it.attrs.get(key, "")) for it in query_items]
            for key in ("attack", "family")
            if any(key in it.attrs for it in query_items)
        }

    def scores(self, ids: np.ndarray, k: int) -> dict[str, Any]:
        top = ids[:, :k]
        valid = top >= 0
        hit = ((self.db_codes[np.where(valid, top, 0)] == self.q_codes[:, None]) & valid).any(1)
        out: dict[str, Any] = {
            "hit_rate": float(hit.mean()),
            "queries_without_original": int((~self.has_original).sum()),
        }
        for key, labels in self.groups.items():
            sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for label, h in zip(labels, hit, strict=True):
                sums[label][0] += int(h)
                sums[label][1] += 1
            out[f"hit_rate_by_{key}"] = {lab: s / n for lab, (s, n) in sorted(sums.items())}
        return out
