"""What the harness costs: QPS measured by `bench` vs a bare loop over the library.

The bench side times the backend adapter with ``bench.run.measure.time_search``, the
function the worker uses for every run (one warm-up, best repeat; in single
mode the per-query latencies). The bare side builds the same index (same
parameters and seed) and times the library's own calls: ``knn_query`` on the
whole batch / on each row for hnswlib, ``get_nns_by_vector`` on pre-converted
list rows (the fastest way to call Annoy) for Annoy. Targets: bench / bare >=
0.95 in batch mode, >= 0.90 in single-query mode.

Timings on a shared machine are noisy, so by default both sides run in this
process and alternate, ``--rounds`` times each, keeping the best of each: load
changes hit both alike. ``--worker`` instead runs the bench side as ``bench run``
does, in a forkserver worker (``bench.run.executors.local.run_in_worker``); that is
the full path but compares two processes measured at different moments.

    python benchmarks/backend_overhead.py [--n 20000] [--queries 1000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.algorithms import registry
from bench.run.executors.local import run_in_worker
from bench.run.executors.task import BuildTask, QueryPoint, TimingPlan
from bench.run.measure import time_search

K = 10
SEED = 42
CONFIGS: list[tuple[str, dict[str, Any], str, list[Any]]] = [
    ("hnswlib", {"M": 16, "ef_construction": 200}, "ef", [10, 50, 200]),
    ("annoy", {"n_trees": 50}, "search_k", [500, 5000, 50000]),
]


def clustered(n: int, n_queries: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    centres = rng.normal(0, 4, (50, dim))
    labels = rng.integers(0, 50, n + n_queries)
    x = (centres[labels] + rng.normal(0, 1, (n + n_queries, dim))).astype(np.float32)
    return x[:n], x[n:]


def bench_qps(algorithm: str, build: dict[str, Any], name: str, values: list[Any], mode: str,
              runs: int, paths: tuple[str, str], dim: int) -> dict[Any, float]:
    points = [QueryPoint(i, {name: v}, K, f"{algorithm}-{v}") for i, v in enumerate(values)]
    task = BuildTask(
        algorithm=algorithm, build=build, points=points, metric="euclidean", dim=dim,
        database_path=paths[0], queries_path=paths[1], mode=mode,
        timing=TimingPlan(runs=runs), threads=1,
        seed=SEED, timeout_s=600, memory_limit_bytes=None,
    )
    out = {}
    for kind, payload in run_in_worker(task):
        if kind == "point":
            out[payload.point.params[name]] = payload.timing["qps"]
        elif kind == "failure":
            raise SystemExit(f"{algorithm} failed: {payload.message}")
    return out


def inline_qps(backend: Any, name: str, value: Any, queries: np.ndarray,
               mode: str) -> Callable[[], float]:
    """One timed repeat through the adapter, as the worker times it."""
    backend.set_query_params(**{name: value})

    def measure() -> float:
        timing = time_search(backend.search_raw, queries, K, mode=mode, runs=1,
                             finish=backend.finish)
        return len(queries) / timing.total_s

    return measure


def best_qps(call: Callable[[], None], n_queries: int, runs: int) -> float:
    call()  # warm-up
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        call()
        best = min(best, (time.perf_counter_ns() - t0) * 1e-9)
    return n_queries / best


def bare_hnswlib(data: np.ndarray, build: dict[str, Any]) -> Callable[[Any, np.ndarray, str],
                                                                       Callable[[], None]]:
    import hnswlib

    index = hnswlib.Index(space="l2", dim=data.shape[1])
    index.init_index(max_elements=len(data), ef_construction=build["ef_construction"],
                     M=build["M"], random_seed=SEED)
    index.add_items(data, np.arange(len(data)), num_threads=1)

    def make(ef: Any, queries: np.ndarray, mode: str) -> Callable[[], None]:
        index.set_ef(ef)
        if mode == "batch":
            return lambda: index.knn_query(queries, k=K, num_threads=1)
        rows = list(queries)

        def loop() -> None:
            for q in rows:
                index.knn_query(q, k=K, num_threads=1)

        return loop

    return make


def bare_annoy(data: np.ndarray, build: dict[str, Any]) -> Callable[[Any, np.ndarray, str],
                                                                     Callable[[], None]]:
    from annoy import AnnoyIndex

    index = AnnoyIndex(data.shape[1], "euclidean")
    index.set_seed(SEED)
    for i, row in enumerate(data.tolist()):
        index.add_item(i, row)
    index.build(build["n_trees"], n_jobs=1)

    def make(search_k: Any, queries: np.ndarray, mode: str) -> Callable[[], None]:
        rows = queries.tolist()
        query = index.get_nns_by_vector

        def loop() -> None:
            for q in rows:
                query(q, K, search_k, True)

        return loop

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--worker", action="store_true",
                        help="time the bench side in a forkserver worker, as `bench run` does")
    args = parser.parse_args()
    data, queries = clustered(args.n, args.queries, args.dim)
    bare_factories = {"hnswlib": bare_hnswlib, "annoy": bare_annoy}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        paths = (str(Path(tmp) / "db.npy"), str(Path(tmp) / "q.npy"))
        np.save(paths[0], data)
        np.save(paths[1], queries)
        for algorithm, build, name, values in CONFIGS:
            make = bare_factories[algorithm](data, build)
            backend = None
            if not args.worker:
                backend = registry.get(algorithm)("euclidean", args.dim, **build, seed=SEED)
                backend.set_threads(1)
                backend.build(data)
                backend.index_bytes()  # as in the worker (Annoy then serves from a memory map)
            for mode in ("batch", "single"):
                bench_best: dict[Any, float] = {}
                bare_best: dict[Any, float] = {}
                if args.worker:
                    for _ in range(args.rounds):
                        for v, qps in bench_qps(algorithm, build, name, values, mode, args.runs,
                                                paths, args.dim).items():
                            bench_best[v] = max(bench_best.get(v, 0.0), qps)
                for v in values:
                    bare = make(v, queries, mode)
                    measure = None if backend is None else inline_qps(backend, name, v,
                                                                      queries, mode)
                    for _ in range(args.rounds):
                        if measure is not None:
                            bench_best[v] = max(bench_best.get(v, 0.0), measure())
                        qps = best_qps(bare, len(queries), 1 if measure else args.runs)
                        bare_best[v] = max(bare_best.get(v, 0.0), qps)
                for v in values:
                    rows.append((algorithm, mode, f"{name}={v}", bench_best[v], bare_best[v]))
    print(f"{args.n} x {args.dim} clustered, euclidean, {args.queries} queries, k={K}, "
          f"1 thread, best of {args.rounds} alternating rounds"
          + (f" ({args.runs} runs each, bench side in a worker)" if args.worker else ""))
    header = (f"{'backend':<9} {'mode':<7} {'query':<16} {'bench QPS':>10} {'bare QPS':>10} "
              f"{'ratio':>6}")
    print(header)
    print("-" * len(header))
    for algorithm, mode, params, bench, bare in rows:
        target = 0.95 if mode == "batch" else 0.90
        flag = "" if bench / bare >= target else f"  < {target}"
        print(f"{algorithm:<9} {mode:<7} {params:<16} {bench:>10.0f} {bare:>10.0f} "
              f"{bench / bare:>6.3f}{flag}")


if __name__ == "__main__":
    main()
