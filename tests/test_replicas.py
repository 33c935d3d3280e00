"""Process replicas: N fresh workers per build, their samples pooled into one record."""

from __future__ import annotations

import json
import statistics

import numpy as np
from conftest import small_experiment

from bench.run.executors.task import (
    BuildReport,
    BuildTask,
    Failure,
    PointResult,
    QueryPoint,
    TimingPlan,
)
from bench.run.replicas import pool_timing, run_replicas
from bench.run.runner import RunOptions, run_experiment


def _timing(samples: list[float]) -> dict:
    return {"qps": statistics.median_low(samples), "samples_qps": samples,
            "sample_loops": [2] * len(samples), "wall_time_s": 1.0, "cpu_time_s": 0.9,
            "latency_mean_ms": 1e3 / statistics.median_low(samples), "target_ci": 0.02}


def test_pool_timing_takes_the_statistics_of_all_samples():
    a = _timing([100.0, 102.0, 101.0])
    b = _timing([80.0, 81.0, 79.0])  # a slower process
    pooled = pool_timing([a, b])
    assert pooled["n_samples"] == 6 and pooled["samples_qps"] == [100, 102, 101, 80, 81, 79]
    assert pooled["qps"] == 81.0  # lower median of the six
    assert pooled["qps_min"] == 79.0 and pooled["qps_max"] == 102.0
    assert pooled["replica_qps"] == [101.0, 80.0]
    assert pooled["wall_time_s"] == 2.0 and pooled["sample_loops"] == [2] * 6
    # the latencies are those of the replica whose headline is nearest the pooled one
    assert pooled["latency_mean_ms"] == b["latency_mean_ms"]
    assert pooled["qps_cv"] > 0.1 and pooled["stable"] is False


def _task(points: list[QueryPoint]) -> BuildTask:
    return BuildTask(algorithm="x", build={}, points=points, metric="euclidean", dim=2,
                     database_path="", queries_path="", mode="batch", timing=TimingPlan(),
                     threads=1, seed=0, timeout_s=1, memory_limit_bytes=None)


def test_a_point_that_fails_in_one_replica_fails_and_the_rest_pool():
    points = [QueryPoint(0, {"p": 1}, 1, "a"), QueryPoint(1, {"p": 2}, 1, "b")]
    calls = []

    def execute(task):
        calls.append([p.run_id for p in task.points])
        replica = len(calls)
        yield "built", BuildReport(1.0 * replica, 100, None, {"gflops": 10.0 * replica})
        for p in task.points:
            if p.run_id == "b" and replica == 2:
                yield "failure", Failure("failed", "search", "boom", p)
                continue
            ids = np.zeros((1, 1), np.int64)
            yield "point", PointResult(p, _timing([10.0 * replica, 11.0, 12.0]), [0.1],
                                       ids, ids.astype(np.float32))
        yield "done", {"peak_rss_bytes": replica}

    out = list(run_replicas(_task(points), execute, 3, 0.02))
    assert calls == [["a", "b"], ["a", "b"], ["a"]]  # b is not measured again once failed
    kinds = [k for k, _ in out]
    assert kinds == ["built", "point", "failure", "done"]
    built = out[0][1]
    assert built.build_time_s == 2.0 and built.probe["replica_gflops"] == [10.0, 20.0, 30.0]
    point = out[1][1]
    assert point.timing["n_samples"] == 9 and point.timing["replicas"] == 3
    assert out[2][1].point.run_id == "b" and out[3][1] == {"peak_rss_bytes": 3}


def test_replicas_pool_samples_of_fresh_workers(write_experiment):
    spec = small_experiment(runs=3, min_sample_s=0.001, max_point_s=0.0, replicas=2)
    results = run_experiment(write_experiment(spec), RunOptions(progress=False))
    runs = json.loads(results.path.read_text())["runs"]
    assert len(runs) == 3 and all(r["status"] == "ok" for r in runs)
    for r in runs:
        assert r["n_samples"] == 6 and r["replicas"] == 2 and len(r["replica_qps"]) == 2
        assert len(r["probe"]["replica_gflops"]) == 2
        assert r["qps"] == statistics.median_low(r["samples_qps"])
