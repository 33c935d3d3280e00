"""Pooled copy-detection metrics (ISC 2021 / DISC21 style), issue #17 step 1.

Every (query, reference, score) prediction of every query is pooled and sorted by
score (higher = more similar). Per-query metrics hide false positives; pooling
them is how the copy-detection field judges a detector: one global threshold.

- µAP: precision integrated over recall, sum over positives of precision at that
  rank divided by the number of true pairs. Ties are broken pessimistically:
  within a block of equal scores the negatives come first.
- recall at precision p: the largest recall whose precision is >= p, and the
  lowest score threshold that reaches it.
- an optional global cap keeps only the highest-scoring predictions.

Similarity from distance (so higher = closer). The harness hands every metric over
as a distance where smaller is better (bench.core.distances, groundtruth.exact):
euclidean -> -d (minus the L2 distance), angular -> 1 - d (the cosine, since the
harness distance is 1 - cos on unit vectors), ip -> -d (the inner product: the
harness distance is -dot), hamming -> -d (minus the number of differing bits).
Padded slots (id -1, distance +inf) become -inf; callers drop them before pooling.
"""

from __future__ import annotations

import numpy as np

from bench.core.distances import canonical_metric
from bench.core.errors import BenchError


def similarity_from_distance(distances: np.ndarray, metric: str) -> np.ndarray:
    """Turn backend distances into similarities (higher = more similar)."""
    d = np.asarray(distances, dtype=np.float64)
    m = canonical_metric(metric)
    if m == "angular":
        return 1.0 - d
    return -d  # euclidean, ip (distance is -dot), hamming


def _sorted_pessimistic(scores: np.ndarray, correct: np.ndarray,
                        cap: int | None) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=bool).ravel()
    if scores.shape != correct.shape:
        raise BenchError(f"pooled metrics: {scores.size} scores but {correct.size} labels")
    if np.isnan(scores).any():
        raise BenchError("pooled metrics: a prediction score is NaN")
    # Sort by score descending; within equal scores negatives (False) first.
    order = np.lexsort((correct, -scores))
    if cap is not None:
        if cap < 1:
            raise BenchError(f"pooled metrics: cap must be >= 1, got {cap}")
        order = order[:cap]
    return scores[order], correct[order]


def pooled_pr(scores: np.ndarray, correct: np.ndarray, n_positives: int,
              cap: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled (precision, recall, threshold) at every prediction rank."""
    if n_positives < 1:
        raise BenchError("pooled metrics: the ground truth holds no true pair")
    s, c = _sorted_pessimistic(scores, correct, cap)
    if int(np.count_nonzero(correct)) > n_positives:
        raise BenchError(
            f"pooled metrics: {int(np.count_nonzero(correct))} correct predictions but only "
            f"{n_positives} true pairs (a reference predicted twice for one query?)")
    tp = np.cumsum(c)
    rank = np.arange(1, s.size + 1)
    return tp / rank, tp / n_positives, s


def micro_ap(scores: np.ndarray, correct: np.ndarray, n_positives: int,
             cap: int | None = None) -> float:
    """µAP: mean over all true pairs of precision at their rank (missed pairs add 0)."""
    precision, recall, _ = pooled_pr(scores, correct, n_positives, cap)
    # a rank holds a true pair exactly where recall steps up
    hit = np.diff(recall, prepend=0.0) > 0
    return float(precision[hit].sum() / n_positives)


def recall_at_precision(scores: np.ndarray, correct: np.ndarray, n_positives: int,
                        p: float = 0.9, cap: int | None = None) -> tuple[float, float | None]:
    """Largest recall reached with precision >= p, and the score threshold for it."""
    precision, recall, thr = pooled_pr(scores, correct, n_positives, cap)
    # Only cut after the last item of a block of equal scores (a threshold cannot split ties).
    ends = np.ones(thr.size, dtype=bool)
    ends[:-1] = thr[:-1] != thr[1:]
    ok = (precision >= p) & ends
    if not ok.any():
        return 0.0, None
    i = int(np.argmax(np.where(ok, recall, -1.0)))
    return float(recall[i]), float(thr[i]) + 0.0  # + 0.0: no -0.0 in the record


def accuracy_at_1(top1_correct: np.ndarray, positive: np.ndarray) -> float:
    """Share of positive queries whose top prediction is a true pair."""
    pos = np.asarray(positive, dtype=bool)
    if not pos.any():
        return float("nan")
    return float(np.asarray(top1_correct, dtype=bool)[pos].mean())
