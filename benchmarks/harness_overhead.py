"""QPS measured by `bench` vs the same library call timed in a bare loop.

Same data, same parameters, same thread count, best of the same number of
repeats. Targets: bench/bare >= 0.95 in batch mode and >= 0.90 in single-query
mode. Run: python benchmarks/harness_overhead.py [--n 30000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CONFIGS = [
    ("faiss", {"factory": "IVF256,Flat"}, {"nprobe": 16}),
    ("faiss", {"factory": "HNSW16"}, {"efSearch": 40}),
    ("hnswlib", {"M": 16, "ef_construction": 100}, {"ef": 40}),
    ("annoy", {"n_trees": 20}, {"search_k": 2000}),
]


def bare_backend(algorithm: str, build: dict, query: dict, data: np.ndarray, dim: int):
    """The library itself, configured exactly like the backend, with no harness code."""
    if algorithm == "faiss":
        import faiss

        faiss.omp_set_num_threads(1)
        index = faiss.index_factory(dim, build["factory"], faiss.METRIC_L2)
        index.train(data)
        index.add(data)
        faiss.ParameterSpace().set_index_parameter(index, *next(iter(query.items())))
        return lambda q, k: index.search(q, k)
    if algorithm == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="l2", dim=dim)
        index.init_index(max_elements=len(data), M=build["M"],
                         ef_construction=build["ef_construction"], random_seed=42)
        index.add_items(data, num_threads=1)
        index.set_ef(query["ef"])
        return lambda q, k: index.knn_query(q, k=k, num_threads=1)
    if algorithm == "annoy":
        from annoy import AnnoyIndex

        index = AnnoyIndex(dim, "euclidean")
        index.set_seed(42)
        for i, row in enumerate(data):
            index.add_item(i, row)
        index.build(build["n_trees"], n_jobs=1)
        sk = query["search_k"]

        def search(q: np.ndarray, k: int):
            return [index.get_nns_by_vector(row, k, search_k=sk) for row in q]

        return search
    raise ValueError(algorithm)


def bare_qps(search, queries: np.ndarray, k: int, mode: str, runs: int) -> float:
    search(queries if mode == "batch" else queries[:100], k)  # warm-up like the harness
    best = float("inf")
    for _ in range(runs):
        if mode == "batch":
            t0 = time.perf_counter_ns()
            search(queries, k)
            best = min(best, (time.perf_counter_ns() - t0) * 1e-9)
        else:
            total = 0
            for i in range(len(queries)):
                q = queries[i : i + 1]
                t0 = time.perf_counter_ns()
                search(q, k)
                total += time.perf_counter_ns() - t0
            best = min(best, total * 1e-9)
    return len(queries) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated algorithm names")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="featbench-overhead-"))
    os.environ["BENCH_RESULTS"] = str(tmp / "results")
    os.environ["BENCH_CACHE"] = str(tmp / "cache")
    from bench.run.runner import RunOptions, run_experiment

    configs = [c for c in CONFIGS if not args.only or c[0] in args.only.split(",")]
    rows = []
    for mode in ("batch", "single"):
        spec = {
            "name": f"overhead-{mode}", "seed": 42, "metric": "euclidean", "k": 10,
            "mode": mode, "threads": 1, "runs": args.runs, "timeout": 1200,
            "dataset": {"name": "synthetic", "kind": "clustered", "n": args.n,
                        "n_queries": args.queries, "dim": args.dim, "n_clusters": 64},
            "algorithms": [{"algorithm": a, "build": b, "query": q} for a, b, q in configs],
        }
        path = tmp / f"{mode}.yaml"
        path.write_text(yaml.safe_dump(spec))
        results = run_experiment(path, RunOptions(progress=False))
        prepared = Path(next(iter(results.data["dataset"]["feature_sets"].values()))["fingerprint"])
        fp = str(prepared)
        data = np.load(tmp / "cache" / "prepared" / f"{fp}-database.npy")
        queries = np.load(tmp / "cache" / "prepared" / f"{fp}-queries.npy")
        for (algorithm, build, query), run in zip(configs, results.runs, strict=True):
            search = bare_backend(algorithm, build, query, data, args.dim)
            bare = bare_qps(search, queries, 10, mode, args.runs)
            rows.append((mode, algorithm, build, query, run["qps"], bare, run["recall"]))
    print(f"{'mode':7s} {'algorithm':9s} {'params':42s} {'bench QPS':>11s} {'bare QPS':>11s} "
          f"{'ratio':>6s} {'recall':>7s}")
    for mode, algorithm, build, query, qps, bare, recall in rows:
        params = ", ".join(f"{k}={v}" for k, v in {**build, **query}.items())
        print(f"{mode:7s} {algorithm:9s} {params:42s} {qps:11,.0f} {bare:11,.0f} "
              f"{qps / bare:6.3f} {recall:7.4f}")


if __name__ == "__main__":
    main()
