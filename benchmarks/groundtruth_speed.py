"""Throughput of exact ground truth against the plain matrix product it is built on.

Prints GFLOP/s (2 * nq * n * d / seconds) of ``exact_knn`` for euclidean and
angular next to a plain float32 product over blocks of the same size, measured
in the same run and interleaved (the best of ``--repeats`` each, so a busy
shared machine hurts both alike), and the ratio (target >= 0.70). Also times
Faiss' flat indexes on the same data, which is how the exact-search path was
chosen, and Hamming ground truth against faiss.IndexBinaryFlat.

    python benchmarks/groundtruth_speed.py [--n 100000 --queries 5000 --dim 128]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.groundtruth import exact as groundtruth  # noqa: E402


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def plain_product(x: np.ndarray, q: np.ndarray) -> None:
    """The same blocked float32 products as exact_knn, with nothing done to the scores."""
    qb, xb = groundtruth.QUERY_BLOCK, groundtruth.DB_BLOCK
    out = np.empty(qb * xb, dtype=np.float32)
    for start in range(0, len(x), xb):
        block = x[start : start + xb]
        for b0 in range(0, len(q), qb):
            qs = q[b0 : b0 + qb]
            np.matmul(qs, block.T, out=out[: len(qs) * len(block)].reshape(len(qs), len(block)))


def faiss_flat(x: np.ndarray, q: np.ndarray, k: int, metric: str, threads: int) -> Callable:
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatL2(x.shape[1]) if metric == "euclidean" else faiss.IndexFlatIP(
        x.shape[1]
    )
    index.add(x)

    def run() -> None:
        faiss.omp_set_num_threads(threads)
        index.search(q, k)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--hamming-queries", type=int, default=2_000)
    args = parser.parse_args()

    import os

    import faiss  # loaded before threadpool_info, so its bundled OpenBLAS is listed too
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = args.threads or os.cpu_count() or 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    flops = 2.0 * args.n * args.queries * args.dim
    print(f"database {args.n} x {args.dim}, {args.queries} queries, k={args.k}, "
          f"{threads} threads, blocks {groundtruth.QUERY_BLOCK} x {groundtruth.DB_BLOCK}")
    for info in threadpool_info():
        print(f"  {info.get('internal_api')} {info.get('version', '')} "
              f"arch={info.get('architecture')} threads={info.get('num_threads')} "
              f"({Path(info.get('filepath', '')).name})")

    jobs: dict[str, Callable[[], object]] = {
        "product": lambda: plain_product(x, q),
        "euclidean": lambda: groundtruth.exact_knn(x, q, args.k, "euclidean", threads=threads),
        "angular": lambda: groundtruth.exact_knn(xn, qn, args.k, "angular", threads=threads),
        "faiss IndexFlatL2": faiss_flat(x, q, args.k, "euclidean", threads),
        "faiss IndexFlatIP": faiss_flat(xn, qn, args.k, "angular", threads),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(args.repeats):  # interleaved, so load changes hit every job alike
            for name, job in jobs.items():
                times[name].append(best_of(1, job))
    rate = {name: flops / min(t) / 1e9 for name, t in times.items()}
    print(f"plain float32 product       {rate['product']:7.1f} GFLOP/s")
    for metric in ("euclidean", "angular"):
        print(f"ground truth {metric:<14} {rate[metric]:7.1f} GFLOP/s  "
              f"ratio {rate[metric] / rate['product']:.2f}  (target >= 0.70)")
    for name, metric in (("faiss IndexFlatL2", "euclidean"), ("faiss IndexFlatIP", "angular")):
        print(f"{name:<27} {rate[name]:7.1f} GFLOP/s  numpy path / faiss = "
              f"{rate[metric] / rate[name]:.2f}  (faiss k={args.k}, no re-scoring)")

    nh = args.hamming_queries
    codes = rng.integers(0, 256, size=(args.n, 8), dtype=np.uint8)
    qcodes = rng.integers(0, 256, size=(nh, 8), dtype=np.uint8)
    t_np = best_of(args.repeats, lambda: groundtruth.exact_knn(codes, qcodes, args.k, "hamming"))
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    t_fa = best_of(args.repeats, lambda: index.search(qcodes, args.k))
    pairs = args.n * nh / 1e9
    print(f"hamming 64-bit, {nh} queries: numpy {pairs / t_np:.2f} G pairs/s (exact ties), "
          f"faiss IndexBinaryFlat {pairs / t_fa:.2f} G pairs/s (ties unordered)")


if __name__ == "__main__":
    main()
