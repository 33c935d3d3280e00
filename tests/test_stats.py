"""Timing statistics: the median's order-statistic CI, CV, the stop rule, the ratio CI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from bench.core import stats


def test_median_ci_is_the_binomial_order_statistic_interval():
    # n = 10: P(Bin(10, 1/2) <= 1) = 11/1024, so [x_(2), x_(9)] covers the median with
    # 1 - 2 * 11/1024 = 97.9 % >= 95 %, while [x_(3), x_(8)] covers only 89 %
    samples = [10.0, 3.0, 7.0, 1.0, 9.0, 2.0, 8.0, 4.0, 6.0, 5.0]
    assert 1 - 2 * binom.cdf(1, 10, 0.5) >= 0.95 > 1 - 2 * binom.cdf(2, 10, 0.5)
    assert stats.median_ci(samples) == (2.0, 9.0)
    # n = 20: ranks 6 and 15 (P(Bin(20, 1/2) <= 5) = 0.0207)
    assert stats.median_ci(list(range(1, 21))) == (6.0, 15.0)
    # the larger side relative to the median: median 5.5, sides 3.5 and 3.5
    assert stats.ci_halfwidth(samples) == pytest.approx(3.5 / 5.5)


def test_fewer_than_six_samples_have_no_95_percent_interval():
    # [x_(1), x_(5)] covers the median with 1 - 2 / 32 = 93.75 % only
    low, high = stats.median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(low) and math.isnan(high)
    assert stats.ci_halfwidth([1.0, 2.0, 3.0, 4.0, 5.0]) == math.inf
    assert stats.median_ci([1.0, 2, 3, 4, 5, 6]) == (1.0, 6.0)


def test_cv_and_the_median_sample():
    assert stats.cv([100.0, 100.0, 100.0]) == 0.0
    assert stats.cv([90.0, 100.0, 110.0]) == pytest.approx(10 / 100)
    assert stats.cv([5.0]) == 0.0
    # even count: the lower median, a real sample
    assert stats.median_index([4.0, 1.0, 3.0, 2.0]) == 3
    assert stats.median_index([5.0, 1.0, 3.0]) == 2


def test_stop_rule_needs_runs_then_target_or_budget():
    tight = [100.0 + 0.1 * i for i in range(8)]  # +-0.4 % around the median
    wide = [100.0, 80.0, 120.0, 95.0, 105.0, 70.0, 130.0, 90.0]
    rule = dict(runs=3, target_ci=0.02, max_point_s=1.0)
    assert not stats.should_stop(tight[:2], 0.1, **rule)  # fewer than runs
    assert not stats.should_stop(tight[:5], 0.1, **rule)  # no CI below 6 samples yet
    assert stats.should_stop(tight, 0.1, **rule)  # target reached
    assert not stats.should_stop(wide, 0.5, **rule)  # target not reached, budget left
    assert stats.should_stop(wide, 1.0, **rule)  # budget spent
    assert not stats.should_stop(tight[:2], 5.0, **rule)  # runs first, whatever the budget


def test_summary_marks_unstable_points():
    wide = [100.0, 80.0, 120.0, 95.0, 105.0, 70.0, 130.0, 90.0]
    s = stats.summarize(wide, 0.02)
    assert s["stable"] is False and s["n_samples"] == 8 and s["samples_qps"] == wide
    assert s["qps"] == 95.0 and s["qps_median"] == 97.5  # lower median sample, true median
    assert s["qps_min"] == 70.0 and s["qps_max"] == 130.0
    assert s["qps_ci"] == [70.0, 130.0]  # n = 8: [x_(2), x_(7)] covers only 93 %
    few = stats.summarize([100.0, 100.5, 99.5], 0.02)
    assert few["stable"] is False and few["qps_ci"] is None  # 3 samples bracket nothing
    tight = stats.summarize([100.0 + 0.1 * i for i in range(8)], 0.02)
    assert tight["stable"] is True


def test_ratio_ci_brackets_a_known_shift_and_is_reproducible():
    rng = np.random.default_rng(1)
    base = 1000 * (1 + 0.02 * rng.standard_normal(15))
    slower = 0.9 * 1000 * (1 + 0.02 * rng.standard_normal(15))
    ratio, low, high = stats.ratio_ci(base, slower)
    assert low <= ratio <= high and low < 0.9 < high and high < 0.95
    assert stats.ratio_ci(base, slower) == (ratio, low, high)  # fixed seed
    # normalised by a reference that slowed down as much: no change
    ref = 500 * (1 + 0.02 * rng.standard_normal(15))
    ratio, low, high = stats.ratio_ci(base, slower, ref, 0.9 * ref)
    assert low < 1.0 < high
    # one figure each (old records): a point interval
    assert stats.ratio_ci([100.0], [90.0]) == pytest.approx((0.9, 0.9, 0.9))
