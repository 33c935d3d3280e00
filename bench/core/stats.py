"""The statistics of timing samples: the median, its confidence interval, the stop rule.

Why the median and an order-statistic interval rather than the mean +- std or a
bootstrap: timing samples on a shared machine are skewed (a sample hit by another
job is much slower, never much faster) and often few (6-20). The median ignores the
slow tail, and the distribution-free interval for it is two order statistics
``x_(l) <= median <= x_(u)`` whose ranks come from the binomial distribution
``Bin(n, 1/2)`` (``scipy.stats.quantile_test``): its coverage is exact for any
continuous distribution of iid samples, it needs no random resampling (the same
samples always give the same interval, so a record does not need a seed), and it
says honestly that fewer than 6 samples cannot bracket the median at 95 %
(``[x_(1), x_(5)]`` covers it with only 1 - 2 / 2**5 = 93.75 %). The percentile
bootstrap of a median is poor at these sizes: it can only return sample values,
undercovers below ~20 samples, and depends on a seed.

The comparison of two sets of samples (a ratio of medians) has no such exact
interval, so ``ratio_ci`` uses ``scipy.stats.bootstrap`` over the independent
sample sets with a fixed, recorded seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: the seed of the bootstrap of ``ratio_ci`` (recorded in the comparison)
BOOTSTRAP_SEED = 0
_RESAMPLES = 2000


def median_ci(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The order-statistic confidence interval of the median; (nan, nan) when the
    samples are too few to reach ``confidence`` (n < 6 at 95 %)."""
    x = np.asarray(samples, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    ci = stats.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(confidence)
    low, high = float(ci.low), float(ci.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return math.nan, math.nan
    return low, high


def ci_halfwidth(samples: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """The larger side of the median's interval relative to the median (0.02 = +-2 %);
    inf when the interval is not defined."""
    low, high = median_ci(samples, confidence)
    mid = float(np.median(samples)) if len(samples) else math.nan
    if not (math.isfinite(low) and mid > 0):
        return math.inf
    return max(mid - low, high - mid) / mid


def cv(samples: Sequence[float]) -> float:
    """Coefficient of variation (sample std / mean); 0 for a single sample."""
    x = np.asarray(samples, dtype=float)
    if len(x) < 2 or x.mean() == 0:
        return 0.0
    return float(stats.variation(x, ddof=1))


def median_index(samples: Sequence[float]) -> int:
    """The index of the median sample: the lower median for an even count, so the
    headline figure is one real sample and its latencies describe that sample."""
    order = np.argsort(np.asarray(samples, dtype=float), kind="stable")
    return int(order[(len(order) - 1) // 2])


def reached(samples: Sequence[float], target_ci: float) -> bool:
    """Whether the median's 95 % interval is within +-``target_ci`` of it."""
    return ci_halfwidth(samples) <= target_ci


def should_stop(samples: Sequence[float], spent_s: float, *, runs: int, target_ci: float,
                max_point_s: float) -> bool:
    """The stop rule of one point: at least ``runs`` samples, then stop when the interval
    reached the target or the point has spent its time budget."""
    if len(samples) < runs:
        return False
    return reached(samples, target_ci) or spent_s >= max_point_s


def summarize(qps: Sequence[float], target_ci: float) -> dict[str, Any]:
    """The statistics stored in a record, computed from its QPS samples."""
    x = [float(v) for v in qps]
    low, high = median_ci(x)
    return {
        "qps": x[median_index(x)],
        "qps_median": float(np.median(x)),
        "qps_min": min(x),
        "qps_max": max(x),
        "qps_ci": [low, high] if math.isfinite(low) else None,
        "qps_ci_halfwidth": _finite(ci_halfwidth(x)),
        "qps_cv": cv(x),
        "n_samples": len(x),
        "samples_qps": x,
        "stable": reached(x, target_ci),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ratio_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """(median(c) / median(c_ref)) / (median(b) / median(b_ref)) for 2 or 4 sample sets."""
    meds = [np.median(s, axis=axis) for s in samples]
    if len(meds) == 2:
        return meds[1] / meds[0]
    b, b_ref, c, c_ref = meds
    return (c / c_ref) / (b / b_ref)


def ratio_ci(baseline: Sequence[float], current: Sequence[float],
             baseline_ref: Sequence[float] | None = None,
             current_ref: Sequence[float] | None = None,
             confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(ratio, low, high): the ratio of medians current / baseline, each optionally
    divided by the median of its reference run, with a percentile-bootstrap interval
    that resamples every sample set independently. A set of one sample contributes
    no spread (the old single-figure records)."""
    sets = [baseline, current] if baseline_ref is None else [
        baseline, baseline_ref, current, current_ref]
    arrays = [np.asarray(s, dtype=float) for s in sets]  # type: ignore[arg-type]
    ratio = float(_ratio_statistic(*arrays))
    if all(len(a) < 2 for a in arrays):
        return ratio, ratio, ratio
    # a one-sample set cannot be resampled by scipy; repeat it (zero spread)
    arrays = [a if len(a) > 1 else np.repeat(a, 2) for a in arrays]
    res = stats.bootstrap(tuple(arrays), _ratio_statistic, confidence_level=confidence,
                          n_resamples=_RESAMPLES, method="percentile", vectorized=True,
                          rng=np.random.default_rng(BOOTSTRAP_SEED))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return ratio, min(low, ratio), max(high, ratio)
