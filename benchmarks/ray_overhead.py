"""What Ray costs: executor wall time vs local, and sharded vs unsharded search QPS.

1. ``quickstart`` (or --experiment) run with ``--executor local`` and then
   ``--executor ray`` on a local Ray instance, each into its own results folder and
   sharing one warm cache (dataset, features and ground truth are prepared once, before
   timing). Ray start-up is timed separately: it is paid once per ``bench run``.
2. Exact search (Faiss Flat) over a clustered database: unsharded in this process vs
   the ``sharded`` backend with 2 shards in Ray actors, and with 2 in-process shards
   (``local: true``: the cost of the merge alone). Same queries, best of --runs.
   The neighbours are checked to be identical.

3. With --memory: single-machine capacity. Every backend's index is built on two
   database sizes (--memory-n) of each --memory-dims dimension through ``bench run``
   (local executor); the growth of its measured index memory (worker USS during build)
   per added vector gives how many vectors fit in 24 GiB (linear extrapolation; the
   figures in docs/scaling.md come from here).

Run: python benchmarks/ray_overhead.py [--experiment quickstart] [--n 200000] [--dim 64]
     [--queries 1000] [--cpus 2] [--skip-executor] [--memory --memory-n 20000 100000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def run_executor(experiment: str, executor: str, root: Path) -> float:
    from bench.run.runner import RunOptions, run_experiment

    os.environ["BENCH_RESULTS"] = str(root / f"results-{executor}")
    t0 = time.perf_counter()
    run_experiment(experiment, RunOptions(executor=executor, progress=False))
    return time.perf_counter() - t0


def executor_overhead(experiment: str, cpus: int) -> None:
    from bench.run.executors import ray_executor

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BENCH_CACHE"] = str(root / "cache")
        warm = run_executor(experiment, "inline", root)  # fills the cache; not compared
        t0 = time.perf_counter()
        ray_executor.ensure_ray(num_cpus=cpus)
        start = time.perf_counter() - t0
        local = run_executor(experiment, "local", root)
        on_ray = run_executor(experiment, "ray", root)
        print(f"executor ({experiment}): warm-up inline {warm:.1f} s, local {local:.1f} s, "
              f"ray {on_ray:.1f} s (+{on_ray - local:.1f} s, x{on_ray / local:.2f}); "
              f"ray start-up {start:.1f} s on top")


def clustered(n: int, n_queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (256, dim))
    labels = rng.integers(0, len(centres), n + n_queries)
    x = (centres[labels] + rng.normal(0, 1, (n + n_queries, dim))).astype(np.float32)
    return x[:n], x[n:]


def best_qps(backend: object, queries: np.ndarray, k: int, runs: int) -> tuple[float, np.ndarray]:
    backend.search(queries, k)  # warm-up
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        _, ids = backend.search(queries, k)
        best = min(best, time.perf_counter() - t0)
    return len(queries) / best, ids


def _single_qps(backend: object, queries: np.ndarray) -> float:
    backend.search(queries[:1], 10)
    t0 = time.perf_counter()
    for i in range(len(queries)):
        backend.search(queries[i : i + 1], 10)
    return len(queries) / (time.perf_counter() - t0)


def sharded_qps(n: int, dim: int, n_queries: int, runs: int, cpus: int) -> None:
    from bench.algorithms import registry
    from bench.run.executors import ray_executor

    ray_executor.ensure_ray(num_cpus=cpus)
    data, queries = clustered(n, n_queries, dim)
    flat = {"factory": "Flat"}
    plain = registry.get("faiss")("euclidean", dim, **flat)
    plain.set_threads(1)
    plain.build(data)
    base, want = best_qps(plain, queries, 10, runs)
    print(f"search: {n:,} x {dim}-d, {n_queries} queries, k=10, 1 thread per shard")
    print(f"  unsharded faiss Flat          {base:10,.0f} QPS")
    for local in (True, False):
        sharded = registry.get("sharded")("euclidean", dim, backend="faiss", shards=2,
                                          backend_params=flat, local=local)
        sharded.set_threads(1)
        t0 = time.perf_counter()
        sharded.build(data)
        build = time.perf_counter() - t0
        qps, ids = best_qps(sharded, queries, 10, runs)
        same = bool(np.array_equal(ids, want))
        where = "in-process" if local else "Ray actors"
        print(f"  sharded x2 ({where:10s})   {qps:10,.0f} QPS  x{qps / base:.2f}  "
              f"build {build:.1f} s  same neighbours: {same}")
        if not local:  # one query per call: the Ray round trip is paid per query
            one = _single_qps(sharded, queries[:200])
            print(f"  single-query: unsharded {_single_qps(plain, queries[:200]):,.0f} QPS, "
                  f"sharded x2 (Ray actors) {one:,.0f} QPS")
        sharded.close()


MEMORY_BACKENDS = [
    {"algorithm": "faiss", "name": "faiss-flat", "build": {"factory": "Flat"}},
    {"algorithm": "faiss", "name": "faiss-ivf-flat", "build": {"factory": "IVF256,Flat"}},
    {"algorithm": "faiss", "name": "faiss-ivf-pq-fs", "build": {"factory": "IVF256,PQ32x4fs"}},
    {"algorithm": "faiss", "name": "faiss-hnsw32", "build": {"factory": "HNSW32"}},
    {"algorithm": "hnswlib", "build": {"M": 16, "ef_construction": 100}},
    {"algorithm": "annoy", "build": {"n_trees": 50}},
    {"algorithm": "bruteforce"},
]
BUDGET = 24 * 2**30


def _index_memory(root: Path, n: int, dim: int) -> dict[str, tuple[float, float]]:
    """label -> (measured index bytes, build seconds) from one `bench run`."""
    import yaml

    from bench.run.runner import RunOptions, run_experiment

    spec = {"name": f"mem{dim}-{n}", "seed": 1, "metric": "euclidean", "k": 10, "runs": 1,
            "timeout": 1200,
            "dataset": {"name": "synthetic", "kind": "clustered", "n": n,
                        "n_queries": 100, "dim": dim, "n_clusters": 64},
            "algorithms": MEMORY_BACKENDS}
    path = root / f"mem{dim}-{n}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    results = run_experiment(path, RunOptions(executor="local", progress=False))
    out = {}
    for run in results.data["runs"]:
        if run["status"] != "ok":
            print(f"  d={dim} n={n} {run['label']}: {run['status']}: {run['error']}")
            continue
        # bruteforce keeps the worker's own copy of the data: its USS does not grow
        measured = max(run["index_uss_bytes"], run.get("index_bytes") or 0)
        out[run["label"]] = (float(measured), float(run["build_time_s"]))
    return out


def memory_capacity(sizes: list[int], dims: list[int]) -> None:
    """Bytes per vector as the slope between two database sizes: one-time allocations
    (library pools, code pages) cancel out, which at small n would otherwise dominate."""
    small, large = sorted(sizes)[:2]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(BENCH_CACHE=str(root / "cache"), BENCH_RESULTS=str(root / "res"))
        print(f"index memory, slope between {small:,} and {large:,} clustered vectors; "
              "capacity = 24 GiB / (bytes per vector + 4*d for the data the worker loads)")
        for dim in dims:
            a, b = _index_memory(root, small, dim), _index_memory(root, large, dim)
            for label in b:
                if label not in a:
                    continue
                per = (b[label][0] - a[label][0]) / (large - small)
                # the harness (and a real service) also holds the raw vectors while building
                total = per + (0 if label == "bruteforce" else 4 * dim)
                print(f"  d={dim:4d} {label:18s} {per:8.1f} B/vector (raw {4 * dim} B)  "
                      f"~{BUDGET / total / 1e6:7.1f} M vectors in 24 GiB  "
                      f"(build {b[label][1]:.1f} s at {large:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--skip-executor", action="store_true")
    parser.add_argument("--memory", action="store_true", help="only the capacity table")
    parser.add_argument("--memory-n", type=int, nargs=2, default=[20_000, 100_000])
    parser.add_argument("--memory-dims", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    if args.memory:
        memory_capacity(args.memory_n, args.memory_dims)
        return
    from bench.run.executors import ray_executor

    try:
        if not args.skip_executor:
            executor_overhead(args.experiment, args.cpus)
        sharded_qps(args.n, args.dim, args.queries, args.runs, args.cpus)
    finally:
        ray_executor.shutdown()


if __name__ == "__main__":
    main()
