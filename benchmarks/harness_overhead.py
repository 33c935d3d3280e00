"""QPS measured by `bench` vs the same library call timed in a bare loop, ABAB.

Same data, same parameters, one thread. A fresh process can be tens of percent
slower than another for its whole life, so one bench process against one bare
process says nothing: this script alternates them (bench, bare, bench, bare ...)
over ``--processes`` fresh processes of each, both timing calibrated samples of at
least ``--min-sample-s`` and reporting the median sample, and prints for every
configuration the ratio of medians bench/bare with its 95 % bootstrap CI
(bench.core.stats.ratio_ci over the per-process figures). Targets: every ratio
within 0.95-1.05, CI narrower than +-3 %, twice in a row (on a quiet machine).

    python benchmarks/harness_overhead.py [--n 30000] [--queries 1000] [--processes 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def bare_samples(search, queries: np.ndarray, k: int, mode: str, n_samples: int,
                 min_sample_s: float) -> list[float]:
    """The bare loop: warm up, then samples that repeat the queries for >= min_sample_s."""
    search(queries if mode == "batch" else queries[:100], k)
    rows = [queries[i : i + 1] for i in range(len(queries))]
    out = []
    for _ in range(n_samples):
        passes, total = 0, 0
        while total * 1e-9 < min_sample_s:
            if mode == "batch":
                t0 = time.perf_counter_ns()
                search(queries, k)
                total += time.perf_counter_ns() - t0
            else:
                for q in rows:
                    t0 = time.perf_counter_ns()
                    search(q, k)
                    total += time.perf_counter_ns() - t0
            passes += 1
        out.append(len(queries) * passes / (total * 1e-9))
    return out


def bare_child(spec_json: str) -> None:
    """One fresh process of the bare side: build, time, print the median sample's QPS."""
    spec = json.loads(spec_json)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        data = np.load(spec["database"])
        queries = np.load(spec["queries"])
        search = bare_backend(spec["algorithm"], spec["build"], spec["query"], data,
                              data.shape[1])
        samples = bare_samples(search, queries, 10, spec["mode"], spec["samples"],
                               spec["min_sample_s"])
    print(json.dumps({"qps": statistics.median_low(samples)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--processes", type=int, default=6, help="fresh processes of each side")
    ap.add_argument("--samples", type=int, default=10, help="timed samples per process")
    ap.add_argument("--min-sample-s", type=float, default=0.05)
    ap.add_argument("--only", default=None, help="comma-separated algorithm names")
    ap.add_argument("--modes", default="batch,single")
    ap.add_argument("--bare-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_child:
        bare_child(args.bare_child)
        return
    tmp = Path(tempfile.mkdtemp(prefix="featbench-overhead-"))
    os.environ["BENCH_RESULTS"] = str(tmp / "results")
    os.environ["BENCH_CACHE"] = str(tmp / "cache")
    from bench.core.stats import ratio_ci
    from bench.run.runner import RunOptions, run_experiment

    configs = [c for c in CONFIGS if not args.only or c[0] in args.only.split(",")]
    rows = []
    for mode in args.modes.split(","):
        for ci, (algorithm, build, query) in enumerate(configs):
            spec = {
                "name": f"overhead-{mode}-{ci}", "seed": 42, "metric": "euclidean", "k": 10,
                "mode": mode, "threads": 1, "runs": args.samples, "timeout": 1200,
                "min_sample_s": args.min_sample_s, "max_point_s": 0.0,
                "dataset": {"name": "synthetic", "kind": "clustered", "n": args.n,
                            "n_queries": args.queries, "dim": args.dim, "n_clusters": 64},
                "algorithms": [{"algorithm": algorithm, "build": build, "query": query}],
            }
            path = tmp / f"{mode}-{ci}.yaml"
            path.write_text(yaml.safe_dump(spec))
            bench, bare, recall = [], [], None
            for _ in range(args.processes):  # A B A B ...
                results = run_experiment(path, RunOptions(progress=False, force=True))
                (run,) = results.runs
                bench.append(run["qps"])
                recall = run["recall"]
                fp = next(iter(results.data["dataset"]["feature_sets"].values()))["fingerprint"]
                child = json.dumps({
                    "database": str(tmp / "cache" / "prepared" / f"{fp}-database.npy"),
                    "queries": str(tmp / "cache" / "prepared" / f"{fp}-queries.npy"),
                    "algorithm": algorithm, "build": build, "query": query, "mode": mode,
                    "samples": args.samples, "min_sample_s": args.min_sample_s})
                out = subprocess.run([sys.executable, __file__, "--bare-child", child],
                                     capture_output=True, text=True, check=True)
                bare.append(json.loads(out.stdout.strip().splitlines()[-1])["qps"])
            ratio, low, high = ratio_ci(bare, bench)
            rows.append((mode, algorithm, build, query, bench, bare, ratio, low, high, recall))
    print(f"{'mode':7s} {'algorithm':9s} {'params':36s} {'bench QPS':>10s} {'bare QPS':>10s} "
          f"{'ratio':>6s} {'95% CI':>15s} {'recall':>7s}")
    for mode, algorithm, build, query, bench, bare, ratio, low, high, recall in rows:
        params = ", ".join(f"{k}={v}" for k, v in {**build, **query}.items())
        print(f"{mode:7s} {algorithm:9s} {params:36s} {statistics.median(bench):10,.0f} "
              f"{statistics.median(bare):10,.0f} {ratio:6.3f} [{low:6.3f}, {high:6.3f}] "
              f"{recall:7.4f}")
    print(f"{args.processes} fresh processes per side, alternated; {args.samples} samples of "
          f">= {args.min_sample_s:g} s each; per-process figure: the median sample")


if __name__ == "__main__":
    main()
