"""Our multi-table LSH against Faiss IndexLSH at similar total code length.

Prints recall@k, candidates examined per query and batch QPS (single thread).
Ours: n_tables tables of n_bits sign projections, multi-probe, exact re-rank.
Faiss: one code of n_tables * n_bits bits per vector (``LSH<bits>rt``: random
rotation + trained thresholds), scanned exhaustively by Hamming distance - so
every query "examines" the whole database, and without re-ranking the answer is
ordered by Hamming distance only. ``,RFlat`` re-ranks k * k_factor Hamming
candidates exactly; k_factor is set so that it re-ranks as many candidates as
our LSH did at the same code length.

    python benchmarks/lsh_vs_faiss.py [--n 50000] [--dim 64] [--queries 1000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench.algorithms import registry
from bench.algorithms._numpy_knn import exact_knn

SETTINGS = [  # (n_bits, n_tables, probe_radius): 64, 128 and 192 bits in all
    (16, 4, 0),
    (16, 8, 1),
    (12, 16, 1),
]


def clustered(n: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian mixture of 100 clusters, L2-normalised (angular, LSH's home metric)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (100, dim))
    labels = rng.integers(0, 100, n + n_queries)
    x = (centres[labels] + rng.normal(0, 0.35, (n + n_queries, dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(ids, truth, strict=True))
    return hits / truth.size


def timed_search(backend, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    backend.search(queries[:50], k)  # warm-up
    t0 = time.perf_counter()
    ids = backend.search(queries, k)[1]
    return ids, len(queries) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    k = args.k
    data, queries = clustered(args.n, args.queries, args.dim, args.seed)
    truth = exact_knn(data, None, queries, k, "angular")[1]
    rows = []
    with threadpool_limits(1):
        for n_bits, n_tables, radius in SETTINGS:
            bits = n_bits * n_tables
            ours = registry.get("lsh")("angular", args.dim, n_bits=n_bits, n_tables=n_tables,
                                       seed=args.seed)
            t0 = time.perf_counter()
            ours.build(data)
            build_s = time.perf_counter() - t0
            ours.set_query_params(probe_radius=radius, fallback="pad")
            ids, qps = timed_search(ours, queries, k)
            ours.set_query_params(probe_radius=radius, fallback="pad")
            ours.search(queries, k)
            cands = ours.extra_metrics()["candidates_per_query"]
            rows.append((f"lsh {n_tables}x{n_bits} r={radius}", bits, recall(ids, truth), cands,
                         qps, build_s))
            for factory, k_factor in ((f"LSH{bits}rt", None),
                                      (f"LSH{bits}rt,RFlat", max(1, math.ceil(cands / k)))):
                # Faiss builds IndexLSH for METRIC_L2 only; on unit vectors L2 ranks as cosine
                faiss_lsh = registry.get("faiss")("euclidean", args.dim, factory=factory)
                faiss_lsh.set_threads(1)
                t0 = time.perf_counter()
                faiss_lsh.build(data)
                build_s = time.perf_counter() - t0
                label = f"faiss {factory}"
                if k_factor is not None:
                    faiss_lsh.set_query_params(k_factor_rf=k_factor)
                    label += f" k_factor={k_factor}"
                ids, qps = timed_search(faiss_lsh, queries, k)
                examined = float(args.n) if k_factor is None else float(k * k_factor)
                rows.append((label, bits, recall(ids, truth), examined, qps, build_s))
    print(f"{args.n} x {args.dim} clustered, angular, {args.queries} queries, k={k}, 1 thread")
    header = (f"{'method':<36} {'bits':>5} {'recall':>7} {'cand/query':>11} {'QPS':>9} "
              f"{'build s':>8}")
    print(header)
    print("-" * len(header))
    for label, bits, r, cands, qps, build_s in rows:
        print(f"{label:<36} {bits:>5} {r:>7.3f} {cands:>11.0f} {qps:>9.0f} {build_s:>8.2f}")
    print("cand/query: exact distances computed (ours, RFlat) or codes compared (IndexLSH).")


if __name__ == "__main__":
    main()
