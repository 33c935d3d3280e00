"""What Ray gains and costs: concurrent build points and distributed ground truth on a
local multi-node cluster, executor wall time vs local, sharded vs unsharded search QPS.

Default (``python benchmarks/ray_overhead.py``):

A. 12-build grids of single-threaded builds (--grid-n vectors; hnswlib graphs, then
   Faiss IVF k-means builds: --grid-backend) run with
   ``--executor ray`` on a local ``ray.cluster_utils`` cluster of 1 node and of 2 nodes
   (1 CPU and one ``bench_slot`` each), alternating 1 / 2 nodes --reps times, each on a
   fresh cluster; wall time of ``run_experiment`` with a warm cache (data and ground
   truth prepared once beforehand; cluster start-up not included). Goal: 2 nodes <=
   0.6x the 1-node time.
B. Exact ground truth of --gt-n x --gt-dim clustered vectors (--gt-queries queries,
   k=10): local ``exact_knn`` (all local CPUs) vs ``exact_knn_ray`` split by database
   shard over a 2-node cluster (1 CPU each; nodes read the file, as on a shared
   filesystem), alternating --reps times; the ids must be identical.

With --overhead, the older measurements instead:

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

Run: python benchmarks/ray_overhead.py [--reps 3] [--grid-n 20000] [--gt-n 200000]
     python benchmarks/ray_overhead.py --overhead [--experiment quickstart] [--n 200000]
         [--dim 64] [--queries 1000] [--cpus 2] [--skip-executor]
     python benchmarks/ray_overhead.py --memory [--memory-n 20000 100000]
On a shared machine the figures move with the other jobs: read medians and spreads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def local_cluster(nodes: int, store_mb: int) -> Iterator[Any]:
    """A fresh ``ray.cluster_utils`` cluster of ``nodes`` nodes, 1 CPU and one slot each."""
    import ray
    from ray.cluster_utils import Cluster

    from bench.core.cluster import SLOT, import_path
    from bench.run.executors import ray_executor

    ray_executor.shutdown()
    os.environ["PYTHONPATH"] = os.pathsep.join(import_path())  # the nodes' workers import bench
    node = {"num_cpus": 1, "resources": {SLOT: 1}, "object_store_memory": store_mb << 20}
    cluster = Cluster(initialize_head=True,
                      head_node_args={**node, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    ray_executor.configure(cluster.address)
    try:
        yield cluster
    finally:
        ray_executor.shutdown()
        ray_executor.configure(None)
        cluster.shutdown()


_SPIN = "x = 0\nfor i in range(15_000_000): x += i"


def cpu_ceiling() -> float:
    """What this machine allows right now: wall time of two CPU-bound processes at once
    over twice the time of one (0.5 on idle cores; near 1.0 when other jobs hold them).
    The grid's 2-node ratio cannot beat it."""
    import subprocess
    import sys

    def spin(count: int) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(count)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - t0

    return spin(2) / (2 * spin(1))


def _spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):.1f} s (min {min(values):.1f}, "
            f"max {max(values):.1f}, n={len(values)})")


#: the 12-build grids: hnswlib graph builds (memory-latency bound: two at once on one
#: machine contend for its shared cache and memory) and Faiss IVF builds (k-means, compute
#: bound), each single-threaded
GRIDS = {
    "hnswlib": {"algorithm": "hnswlib",
                "build": {"M": [8, 12, 16, 24], "ef_construction": [40, 80, 160]},
                "query": {"ef": [40]}},
    "faiss-ivf": {"algorithm": "faiss",
                  "build": {"factory": [f"IVF{c},{e}" for c in (128, 256, 512, 1024)
                                        for e in ("Flat", "SQ8", "SQ4")]},
                  "query": {"nprobe": [8]}},
}


def grid_speedup(n: int, reps: int, backend: str = "hnswlib") -> None:
    import yaml

    from bench.run.runner import RunOptions, run_experiment

    # single-threaded builds (build_threads defaults to all cores since #19): two builds
    # on two 1-CPU nodes of one 2-core machine would otherwise fight over both cores
    spec = {"name": "grid12", "seed": 3, "metric": "euclidean", "k": 10, "threads": 1,
            "build_threads": 1,
            "dataset": {"name": "synthetic", "kind": "clustered", "n": n, "n_queries": 200,
                        "dim": 32, "n_clusters": 32},
            "algorithms": [GRIDS[backend]]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BENCH_CACHE"] = str(root / "cache")
        os.environ["BENCH_RESULTS"] = str(root / "warm")
        warm = {**spec, "name": "warm", "algorithms": [{"algorithm": "bruteforce"}]}
        (root / "warm.yaml").write_text(yaml.safe_dump(warm))
        run_experiment(root / "warm.yaml", RunOptions(executor="inline", progress=False))
        (root / "grid.yaml").write_text(yaml.safe_dump(spec))
        times: dict[int, list[float]] = {1: [], 2: []}
        builds: dict[int, list[float]] = {1: [], 2: []}  # sum of the grid's build seconds
        ceilings = []
        for rep in range(reps):
            ceilings.append(cpu_ceiling())
            print(f"  rep {rep + 1}: machine ceiling x{ceilings[-1]:.2f}", flush=True)
            for nodes in (1, 2):
                with local_cluster(nodes, 100):
                    os.environ["BENCH_RESULTS"] = str(root / f"res-{nodes}-{rep}")
                    t0 = time.perf_counter()
                    results = run_experiment(root / "grid.yaml",
                                             RunOptions(executor="ray", progress=False))
                    times[nodes].append(time.perf_counter() - t0)
                bad = [r for r in results.runs if r["status"] != "ok"]
                builds[nodes].append(sum(r.get("build_time_s") or 0 for r in results.runs))
                used = {(r.get("node") or {}).get("ray_node_id") for r in results.runs}
                print(f"  rep {rep + 1}: {nodes} node(s) {times[nodes][-1]:.1f} s, "
                      f"{len(results.runs)} runs on {len(used)} node(s), {len(bad)} failed",
                      flush=True)
        ratios = [b / a for a, b in zip(times[1], times[2], strict=True)]
        print(f"grid: 12 single-threaded {backend} builds of {n:,} x 32, --executor ray")
        print(f"  1 node : {_spread(times[1])}")
        print(f"  2 nodes: {_spread(times[2])}")
        print(f"  2 nodes / 1 node: median x{statistics.median(ratios):.2f} "
              f"(per rep {', '.join(f'{r:.2f}' for r in ratios)}; goal <= 0.60)")
        print(f"  machine ceiling (2 CPU-bound processes at once / 2 x one): median "
              f"x{statistics.median(ceilings):.2f} "
              f"(per rep {', '.join(f'{c:.2f}' for c in ceilings)}; 0.50 on idle cores)")
        inflation = [b / a for a, b in zip(builds[1], builds[2], strict=True)]
        print(f"  sum of build seconds, 2 nodes / 1 node: median "
              f"x{statistics.median(inflation):.2f} (per rep "
              f"{', '.join(f'{r:.2f}' for r in inflation)}; 1.00 when two builds at once "
              "do not slow each other)")


def groundtruth_speedup(n: int, dim: int, n_queries: int, reps: int) -> None:
    from bench.groundtruth.distributed import exact_knn_ray
    from bench.groundtruth.exact import exact_knn

    data, queries = clustered(n, n_queries, dim, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "database.npy"
        np.save(path, data)
        os.environ["BENCH_RAY_SHARED"] = tmp  # the recommended set-up: nodes read the file
        database = np.load(path, mmap_mode="r")
        local_s, ray_s = [], []
        with local_cluster(2, 2 * (data.nbytes >> 20) + 100):
            for rep in range(reps):
                t0 = time.perf_counter()
                _, want = exact_knn(database, queries, 10, "euclidean")
                local_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                _, got = exact_knn_ray(database, queries, 10, "euclidean", database_path=path)
                ray_s.append(time.perf_counter() - t0)
                print(f"  rep {rep + 1}: local {local_s[-1]:.1f} s, 2 nodes {ray_s[-1]:.1f} s, "
                      f"same ids: {bool(np.array_equal(got, want))}", flush=True)
    ratios = [b / a for a, b in zip(local_s, ray_s, strict=True)]
    print(f"ground truth: {n:,} x {dim}, {n_queries:,} queries, k=10 "
          f"(local: {len(os.sched_getaffinity(0))} CPUs; ray: 2 nodes x 1 CPU, 2 shards)")
    print(f"  local  : {_spread(local_s)}")
    print(f"  2 nodes: {_spread(ray_s)}")
    print(f"  2 nodes / local: median x{statistics.median(ratios):.2f} "
          f"(per rep {', '.join(f'{r:.2f}' for r in ratios)})")


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
    parser.add_argument("--overhead", action="store_true",
                        help="the executor-overhead and sharded-search measurements")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--grid-n", type=int, default=20_000)
    parser.add_argument("--gt-n", type=int, default=200_000)
    parser.add_argument("--gt-dim", type=int, default=128)
    parser.add_argument("--gt-queries", type=int, default=2_000)
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--grid-backend", nargs="+", choices=sorted(GRIDS),
                        default=["hnswlib", "faiss-ivf"])
    parser.add_argument("--skip-groundtruth", action="store_true")
    parser.add_argument("--memory-n", type=int, nargs=2, default=[20_000, 100_000])
    parser.add_argument("--memory-dims", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    if args.memory:
        memory_capacity(args.memory_n, args.memory_dims)
        return
    from bench.run.executors import ray_executor

    if not args.overhead:
        if not args.skip_grid:
            for backend in args.grid_backend:
                grid_speedup(args.grid_n, args.reps, backend)
        if not args.skip_groundtruth:
            groundtruth_speedup(args.gt_n, args.gt_dim, args.gt_queries, args.reps)
        return
    try:
        if not args.skip_executor:
            executor_overhead(args.experiment, args.cpus)
        sharded_qps(args.n, args.dim, args.queries, args.runs, args.cpus)
    finally:
        ray_executor.shutdown()


if __name__ == "__main__":
    main()
