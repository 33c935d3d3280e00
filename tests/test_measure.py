"""The timing loop: what is inside the clock and what is not."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.run.measure import time_search


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_finish_runs_outside_the_clock(mode):
    queries = np.zeros((20, 4), dtype=np.float32)

    def search(q, k):
        return len(q), k

    def slow_finish(raw):
        n, k = raw
        time.sleep(0.01)
        return np.zeros((n, k), np.float32), np.tile(np.arange(k), (n, 1))

    timing = time_search(search, queries, 3, mode=mode, runs=2, finish=slow_finish)
    assert timing.total_s < 0.01  # 20 x 10 ms of finishing would be 0.2 s in single mode
    assert timing.ids.shape == (20, 3) and (timing.ids[:, 2] == 2).all()
    assert len(timing.repeats_s) == 2


def test_search_time_is_counted():
    queries = np.zeros((5, 4), dtype=np.float32)

    def slow_search(q, k):
        time.sleep(0.005)
        return np.zeros((len(q), k), np.float32), np.zeros((len(q), k), np.int64)

    timing = time_search(slow_search, queries, 1, mode="single", runs=1)
    assert timing.total_s >= 5 * 0.005
    assert timing.latencies_s.min() >= 0.005
