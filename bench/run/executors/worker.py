"""The code that runs inside a worker: build once, then measure every query point.

Messages go back over a pipe as they happen, so when the worker later dies
(timeout, out of memory, a segfault in a C++ library) the points already
measured are kept and only the rest are recorded as failed.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.run.executors.task import BuildReport, BuildTask, Failure, PointResult
from bench.run.measure import peak_rss_bytes, time_search, uss_bytes

Send = Callable[[tuple[str, Any]], None]


def _load(path: str) -> np.ndarray:
    # memory-mapped from the cache, then copied once into private memory *before*
    # the baseline measurement, so page-cache residency of the file never counts
    # as index memory
    return np.ascontiguousarray(np.load(path, mmap_mode="r"))


def run_task(task: BuildTask, send: Send) -> None:
    from threadpoolctl import threadpool_limits

    from bench.algorithms import registry

    with threadpool_limits(limits=task.threads):
        database = _load(task.database_path)
        queries = _load(task.queries_path)
        cls = registry.get(task.algorithm)
        build_params = dict(task.build)
        import inspect

        if "seed" in inspect.signature(cls.__init__).parameters and "seed" not in build_params:
            build_params["seed"] = task.seed
        before = uss_bytes()
        try:
            backend = cls(task.metric, task.dim, **build_params)
            backend.set_threads(task.threads)
            t0 = time.perf_counter_ns()
            backend.build(database)
            build_time = (time.perf_counter_ns() - t0) * 1e-9
        except Exception as exc:  # a failing configuration is a result, not a crash
            send(("failure", Failure("failed", "build", _one_line(exc), None)))
            send(("traceback", traceback.format_exc()))
            return
        index_uss = max(0, uss_bytes() - before)
        try:
            own = backend.index_bytes()
        except Exception:
            own = None
        send(("built", BuildReport(build_time, index_uss, own)))
        for point in task.points:
            try:
                backend.set_query_params(**point.params)
                timing = time_search(backend.search_raw, queries, point.k, mode=task.mode,
                                     runs=task.runs, finish=backend.finish)
                extra = backend.extra_metrics()
            except Exception as exc:
                send(("failure", Failure("failed", "search", _one_line(exc), point)))
                send(("traceback", traceback.format_exc()))
                continue
            send(("point", PointResult(point, timing.summary(len(queries)), timing.repeats_s,
                                       timing.ids, timing.distances, extra)))
        backend.close()
        send(("done", {"peak_rss_bytes": peak_rss_bytes()}))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[-1] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def worker_main(task: BuildTask, conn: Any) -> None:
    """Entry point of a worker process."""
    try:
        run_task(task, conn.send)
    except BaseException as exc:  # report, then die: the parent records the failure
        try:
            conn.send(("failure", Failure("crashed", "worker", _one_line(exc), None)))
            conn.send(("traceback", traceback.format_exc()))
        finally:
            conn.close()
        raise SystemExit(1) from None
    conn.close()
