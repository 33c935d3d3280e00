"""Pooled copy-detection scores of one identity run, beside the per-query hit rate.

The per-query view (hit rate@k, the original study's recall@1) leaves queries
without an original out of every mean. The field (ISC 2021 / DISC21) pools every
(query, reference, score) prediction instead, so a detector is judged at one global
threshold and queries without a match count: each of their predictions is a false
positive. Both views are recorded side by side.

Predictions of a query are its first ``pooled.predictions`` results (default: all k
the backend returned, after the judge's exclusion / de-duplication), each scored by
the similarity of its *exact* distance (``similarity_from_distance``), so a backend's
own distance convention cannot change the scores. With ``pooled.normalise`` each
similarity also gets a normalised twin: minus ``beta`` times the similarity of the
query's ``n``-th nearest neighbour in the dataset's background set (exact search over
the background, which never enters the database).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.config.sections import PooledOptions
from bench.core.errors import BenchError
from bench.groundtruth.exact import exact_distances, exact_knn
from bench.scoring.pooled import (
    accuracy_at_1,
    micro_ap,
    pooled_pr,
    recall_at_precision,
    similarity_from_distance,
)


def precision_key(p: float) -> str:
    """``recall@p90`` for 0.9: the record's name of recall at precision p."""
    return f"p{round(p * 100, 2):g}"


def background_similarity(background: np.ndarray, queries: np.ndarray, metric: str,
                          n: int) -> np.ndarray:
    """(nq,) similarity of each query's n-th nearest background item."""
    if background.shape[1] != queries.shape[1]:
        raise BenchError(f"background: dimension {background.shape[1]} does not match the "
                         f"queries' {queries.shape[1]}")
    if len(background) < n:
        raise BenchError(f"relevance.pooled.normalise.n = {n}, but the background set holds "
                         f"only {len(background)} items")
    dist, _ = exact_knn(background, queries, n, metric)
    return similarity_from_distance(dist[:, n - 1], metric)


def _curve(scores: np.ndarray, correct: np.ndarray, n_pos: int, cap: int | None,
           points: int) -> dict[str, list[float]]:
    precision, recall, thr = pooled_pr(scores, correct, n_pos, cap)
    if precision.size == 0:
        return {"precision": [], "recall": [], "threshold": []}
    # only the ends of tie blocks: a threshold cannot stop inside a block of equal scores
    ends = np.ones(thr.size, dtype=bool)
    ends[:-1] = thr[:-1] != thr[1:]
    precision, recall, thr = precision[ends], recall[ends], thr[ends]
    idx = np.unique(np.linspace(0, precision.size - 1, min(points, precision.size))
                    .round().astype(int))
    return {"precision": [round(float(x), 6) for x in precision[idx]],
            "recall": [round(float(x), 6) for x in recall[idx]],
            "threshold": [round(float(x), 6) + 0.0 for x in thr[idx]]}


class PooledScorer:
    """Scores rankings of one feature set with pooled µAP and recall at precision."""

    def __init__(self, opts: PooledOptions, *, database: np.ndarray, queries: np.ndarray,
                 metric: str, n_relevant: np.ndarray, background: np.ndarray | None,
                 families: Sequence[str] | None = None, where: str = "experiment") -> None:
        self.opts = opts
        self.database, self.queries, self.metric = database, queries, metric
        self.n_relevant = np.asarray(n_relevant, dtype=np.int64)
        self.families = None if families is None else np.asarray(families, dtype=str)
        self.shift: np.ndarray | None = None
        if opts.normalise is not None:
            if background is None:
                raise BenchError(f"{where}: relevance.pooled.normalise needs a dataset with a "
                                 "background set (its `background:` option)")
            bg = background_similarity(background, queries, metric, opts.normalise.n)
            self.shift = opts.normalise.beta * bg

    def _pool(self, ranking: np.ndarray, mask: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat (query row, similarity, correct) of every valid prediction + top-1 hits."""
        per = self.opts.predictions
        ranking, mask = (ranking[:, :per], mask[:, :per]) if per else (ranking, mask)
        dist = exact_distances(self.database, self.queries, ranking, self.metric)
        valid = ranking >= 0
        rows = np.nonzero(valid)[0]
        sims = similarity_from_distance(dist[valid], self.metric)
        top1 = mask[:, 0] if mask.shape[1] else np.zeros(len(mask), dtype=bool)
        return rows, sims, mask[valid], top1

    def _metrics(self, rows: np.ndarray, sims: np.ndarray, correct: np.ndarray,
                 suffix: str) -> dict[str, Any]:
        o = self.opts
        n_pos = int(self.n_relevant.sum())
        out: dict[str, Any] = {}
        if n_pos == 0:
            out[f"uap{suffix}"] = None
            for p in o.at_precision:
                out[f"recall@{precision_key(p)}{suffix}"] = None
                out[f"threshold@{precision_key(p)}{suffix}"] = None
            return out
        out[f"uap{suffix}"] = micro_ap(sims, correct, n_pos, o.cap)
        for p in o.at_precision:
            r, t = recall_at_precision(sims, correct, n_pos, p, o.cap)
            out[f"recall@{precision_key(p)}{suffix}"] = r
            out[f"threshold@{precision_key(p)}{suffix}"] = t
        out[f"pooled_pr{suffix}"] = _curve(sims, correct, n_pos, o.cap, o.curve_points)
        if self.families is not None:
            by: dict[str, float | None] = {}
            for fam in np.unique(self.families):
                qsel = self.families == fam
                fam_pos = int(self.n_relevant[qsel].sum())
                psel = qsel[rows]
                by[str(fam)] = (micro_ap(sims[psel], correct[psel], fam_pos)
                                if fam_pos else None)
            out[f"uap_by_family{suffix}"] = by
        return out

    def scores(self, ranking: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        """Pooled metrics of one run; ``ranking`` (nq, m) ids (-1 = none), ``mask`` their
        relevance, both after the judge's exclusion / de-duplication."""
        rows, sims, correct, top1 = self._pool(np.asarray(ranking), np.asarray(mask))
        positive = self.n_relevant > 0
        out: dict[str, Any] = {
            "accuracy@1": None if not positive.any() else accuracy_at_1(top1, positive),
            "positive_queries": int(positive.sum()),
            "negative_queries": int((~positive).sum()),
            "true_pairs": int(self.n_relevant.sum()),
            "predictions": int(sims.size if self.opts.cap is None
                               else min(sims.size, self.opts.cap)),
        }
        out.update(self._metrics(rows, sims, correct, ""))
        if self.shift is not None:
            out.update(self._metrics(rows, sims - self.shift[rows], correct, "_norm"))
        out["pooled"] = self.opts.model_dump()
        return out
