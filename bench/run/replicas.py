"""Process replicas: the same build measured in N fresh workers, samples pooled.

A fresh process can be tens of percent slower than another for its whole life
(memory placement, the core it lands on, a neighbour's cache), and no number of
samples inside one process shows it. ``replicas: N`` builds the configuration in N
workers one after the other and pools their samples, so the median and its interval
describe the spread between processes too; each replica's headline is kept beside
(``replica_qps``). ``bench run --repeat`` pools the samples of its repeats the same way.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bench.core import stats
from bench.run.executors.task import BuildReport, BuildTask, Failure, PointResult

Messages = Iterator[tuple[str, Any]]

#: the latency description of one sample: taken from the replica nearest the pooled headline
_LATENCY = ("search_time_s", "latency_mean_ms", "latency_p50_ms", "latency_p95_ms",
            "latency_p99_ms")


#: the fields ``pool_timing`` recomputes (the statistics of ``stats.summarize`` and more)
POOLED_FIELDS = (*stats.summarize([1.0], 1.0), *_LATENCY, "sample_loops", "samples_cpu_qps",
                 "wall_time_s", "cpu_time_s")


def pool_timing(timings: list[dict[str, Any]], target_ci: float | None = None) -> dict[str, Any]:
    """One record's timing fields from several measurements of the same point: the
    statistics of all their samples together. Records without samples (older files)
    are returned unchanged (the last one)."""
    if not timings or not all(t.get("samples_qps") for t in timings):
        return dict(timings[-1]) if timings else {}
    target = target_ci if target_ci is not None else timings[0].get("target_ci", 0.02)
    pooled = [float(v) for t in timings for v in t["samples_qps"]]
    out = dict(timings[0])
    out.update(stats.summarize(pooled, target))
    nearest = min(timings, key=lambda t: abs(t["qps"] - out["qps"]))
    out.update({k: nearest[k] for k in _LATENCY if k in nearest})
    for key in ("sample_loops", "samples_cpu_qps"):
        out[key] = [v for t in timings for v in t.get(key, [])]
    for key in ("wall_time_s", "cpu_time_s"):
        if all(key in t for t in timings):
            out[key] = sum(t[key] for t in timings)
    out["replica_qps"] = [t["qps"] for t in timings]
    return out


def with_replicas(execute: Callable[[BuildTask], Messages], replicas: int,
                  target_ci: float) -> Callable[[BuildTask], Messages]:
    """An executor's ``execute`` that measures every task in ``replicas`` workers."""
    return lambda task: run_replicas(task, execute, replicas, target_ci)


def run_replicas(task: BuildTask, execute: Callable[[BuildTask], Messages],
                 replicas: int, target_ci: float) -> Messages:
    """The worker protocol of ``execute``, with every point pooled over ``replicas``
    fresh workers. One replica streams as it goes; several report each point after the
    last replica (a point that failed in any replica is a failure)."""
    if replicas <= 1:
        yield from execute(task)
        return
    builds: list[BuildReport] = []
    points: dict[str, list[PointResult]] = {}
    failed: dict[str, tuple[Failure, str | None]] = {}
    peaks: list[dict[str, Any]] = []
    for _ in range(replicas):
        traceback_text = None
        seen: set[str] = set()
        todo = [p for p in task.points if p.run_id not in failed]
        if not todo:
            break
        for kind, payload in execute(replace(task, points=todo)):
            if kind == "node":  # where it runs (ray): the last replica's node is kept
                yield kind, payload
            elif kind == "built":
                builds.append(payload)
            elif kind == "point":
                points.setdefault(payload.point.run_id, []).append(payload)
                seen.add(payload.point.run_id)
            elif kind == "traceback":
                traceback_text = payload
            elif kind == "failure":
                targets = [payload.point] if payload.point else [
                    p for p in todo if p.run_id not in seen]
                for point in targets:
                    failed.setdefault(point.run_id, (replace(payload, point=point),
                                                     traceback_text))
            elif kind == "done":
                peaks.append(payload)
    if builds:
        yield "built", _pooled_build(builds)
    for point in task.points:
        if point.run_id in failed:
            failure, text = failed[point.run_id]
            if text:
                yield "traceback", text
            yield "failure", failure
        elif point.run_id in points:
            yield "point", _pooled_point(points[point.run_id], target_ci)
    if peaks:
        yield "done", {k: max(p[k] for p in peaks if k in p) for k in peaks[0]}


def _pooled_build(builds: list[BuildReport]) -> BuildReport:
    probe = {"gflops": statistics.median(b.probe.get("gflops", 0.0) for b in builds),
             "replica_gflops": [b.probe.get("gflops") for b in builds]}
    cpu = [b.build_cpu_s for b in builds if b.build_cpu_s is not None]
    return BuildReport(statistics.median(b.build_time_s for b in builds),
                       int(statistics.median(b.index_uss_bytes for b in builds)),
                       builds[0].index_bytes, probe,
                       statistics.median(cpu) if len(cpu) == len(builds) else None)


def _pooled_point(results: list[PointResult], target_ci: float) -> PointResult:
    first = results[0]
    timing = pool_timing([r.timing for r in results], target_ci)
    timing["replicas"] = len(results)
    repeats = [v for r in results for v in r.repeats_s]
    return PointResult(first.point, timing, repeats, first.ids, first.distances, first.extra)
