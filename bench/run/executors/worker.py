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

from bench.core.memory import anonymous_bytes
from bench.run.executors.task import BuildReport, BuildTask, Failure, PointResult
from bench.run.measure import PointSampler, calibration_probe, peak_rss_bytes, round_robin

Send = Callable[[tuple[str, Any]], None]


def _load_database(path: str) -> np.ndarray:
    """The database as a read-only memory map of the prepared cache file, never copied:
    a backend adds it in chunks (or, if its library insists on one array in memory, makes
    that one copy itself). Index memory is the growth of anonymous memory, so the file's
    pages in the page cache never count as index memory."""
    return np.load(path, mmap_mode="r")


def _load_queries(path: str) -> np.ndarray:
    # small beside the database; private memory taken before the baseline, so timed
    # searches never fault pages in from the file (and slice plain arrays, not memmaps)
    return np.array(np.load(path, mmap_mode="r"))


def run_task(task: BuildTask, send: Send) -> None:
    from threadpoolctl import threadpool_limits

    from bench.algorithms import registry

    with threadpool_limits(limits=task.threads):
        database = _load_database(task.database_path)
        queries = _load_queries(task.queries_path)
        cls = registry.get(task.algorithm)
        build_params = dict(task.build)
        import inspect

        if "seed" in inspect.signature(cls.__init__).parameters and "seed" not in build_params:
            build_params["seed"] = task.seed
        probe = calibration_probe()
        before = anonymous_bytes()
        peak_anon = before
        try:
            backend = cls(task.metric, task.dim, **build_params)
            build_threads = task.build_threads or task.threads
            backend.set_threads(build_threads)
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            with threadpool_limits(limits=build_threads):
                backend.build(database)
            build_time = (time.perf_counter_ns() - t0) * 1e-9
            build_cpu = (time.process_time_ns() - c0) * 1e-9
            backend.set_threads(task.threads)  # queries run with the query threads
        except Exception as exc:  # a failing configuration is a result, not a crash
            send(("failure", Failure("failed", "build", _one_line(exc), None)))
            send(("traceback", traceback.format_exc()))
            return
        after = anonymous_bytes()
        peak_anon = max(peak_anon, after)
        index_uss = max(0, after - before)
        try:
            own = backend.index_bytes()
        except Exception:
            own = None
        send(("built", BuildReport(build_time, index_uss, own, probe, build_cpu)))
        _measure_points(backend, task, queries, send, build_params)
        peak_anon = max(peak_anon, anonymous_bytes())
        backend.close()
        send(("done", {"peak_rss_bytes": peak_rss_bytes(), "peak_anon_bytes": peak_anon}))


def _measure_points(backend: Any, task: BuildTask, queries: np.ndarray, send: Send,
                    build_params: dict[str, Any]) -> None:
    """Warm up every point, then sample them round-robin; each point is reported as
    soon as its stop rule holds (with ``counter: instructions``, once its searches are
    also counted under Valgrind: bench.run.instructions)."""
    counter = None
    if task.timing.counter == "instructions":
        from bench.run.instructions import InstructionCounter

        try:
            counter = InstructionCounter(backend, metric=task.metric, dim=task.dim,
                                         build=build_params, queries_path=task.queries_path,
                                         mode=task.mode)
        except Exception as exc:  # e.g. a backend that cannot save its index: one line
            send(("failure", Failure("failed", "instructions", _one_line(exc), None)))
            return
    samplers: dict[int, PointSampler] = {}
    for i, point in enumerate(task.points):
        sampler = PointSampler(
            backend.search_raw, queries, point.k, task.mode, task.timing,
            prepare=lambda p=point: backend.set_query_params(**p.params),
            finish=backend.finish)
        try:
            sampler.warm_up()
        except Exception as exc:
            _fail(send, exc, point)
            continue
        samplers[i] = sampler
    order = list(samplers)

    def failed(j: int, exc: Exception) -> None:
        _fail(send, exc, task.points[order[j]])

    for j in round_robin([samplers[i] for i in order], on_error=failed):
        point, sampler = task.points[order[j]], samplers[order[j]]
        try:
            extra = backend.extra_metrics()  # of the point's last sample
        except Exception as exc:
            _fail(send, exc, point)
            continue
        assert sampler.ids is not None and sampler.distances is not None
        timing = sampler.summary()
        if counter is not None:
            try:
                timing.update(counter.point(point.params, point.k, len(queries)))
            except Exception as exc:
                _fail(send, exc, point)
                continue
        send(("point", PointResult(point, timing, sampler.repeats_s(), sampler.ids,
                                   sampler.distances, extra)))
    if counter is not None:
        counter.close()


def _fail(send: Send, exc: Exception, point: Any) -> None:
    send(("failure", Failure("failed", "search", _one_line(exc), point)))
    send(("traceback", traceback.format_exc()))


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
