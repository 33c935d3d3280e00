"""Exact search on a torch device against the CPU paths, and device ground truth.

Prints, on synthetic float32 data (angular, normalised rows), for ``--repeats``
interleaved rounds (torch device, numpy exact, Faiss Flat, torch device, ...):
median QPS and the spread (min-max) of each exact search, the id agreement of the
torch results with numpy's ground truth, and the ground-truth time on the device
(candidates on the device, float64 re-scoring on the host) against the CPU path.

    python benchmarks/gpu_search.py                       # small CPU-sized default
    python benchmarks/gpu_search.py --n 500000 --dim 4096 --queries 10000 --device cuda

The second line is the issue's GPU measurement (500,000 x 4,096, 10,000 queries,
k=10): 8.2 GB of data, so run it on a machine with room for two copies on the host.
``--skip-cpu`` leaves out the CPU searches at that size (they take minutes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.algorithms.torch_backend import TorchBackend
from bench.groundtruth.exact import exact_knn
from bench.groundtruth.torch_knn import exact_knn_device


def _data(n: int, dim: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    db = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 50_000):  # in blocks: no float64 temporary of the whole set
        block = rng.standard_normal((min(50_000, n - lo), dim), dtype=np.float32)
        db[lo: lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = rng.standard_normal((nq, dim), dtype=np.float32)
    return db, q / np.linalg.norm(q, axis=1, keepdims=True)


def _timed(fn) -> tuple[float, object]:  # noqa: ANN001 - any callable
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import faiss
    import torch

    db, q = _data(args.n, args.dim, args.queries, args.seed)
    backend = TorchBackend("angular", args.dim, device=args.device, dtype=args.dtype)
    build_s, _ = _timed(lambda: backend.build(db))
    print(f"data {args.n} x {args.dim} float32 ({db.nbytes / 2**30:.2f} GiB), "
          f"{args.queries} queries, k={args.k}; torch device {backend.device} "
          f"({torch.cuda.get_device_name() if backend.device.startswith('cuda') else 'cpu'}), "
          f"{torch.get_num_threads()} CPU threads; build (copy to device) {build_s:.2f} s")
    backend.search(q[:64], args.k)  # warm-up: kernel selection, allocator
    flat = faiss.IndexFlatIP(args.dim)
    if not args.skip_cpu:
        flat.add(db)
    runs: dict[str, list[float]] = {"torch": [], "numpy exact": [], "faiss Flat": []}
    results = {}
    for _ in range(args.repeats):  # interleaved: drift hits every path alike
        t, results["torch"] = _timed(lambda: backend.search(q, args.k))
        runs["torch"].append(t)
        if args.skip_cpu:
            continue
        t, results["numpy exact"] = _timed(lambda: exact_knn(db, q, args.k, "angular"))
        runs["numpy exact"].append(t)
        t, results["faiss Flat"] = _timed(lambda: flat.search(q, args.k))
        runs["faiss Flat"].append(t)
    for name, times in runs.items():
        if times:
            qps = [args.queries / t for t in times]
            print(f"{name:12s} median {statistics.median(qps):10.0f} QPS "
                  f"(min {min(qps):.0f}, max {max(qps):.0f}, {len(qps)} runs)")
    if "numpy exact" in results:
        agree = (results["torch"][1] == results["numpy exact"][1]).mean()
        print(f"torch ids equal to numpy exact: {agree:.4f}")
    gt_dev, (d_dev, i_dev) = _timed(
        lambda: exact_knn_device(db, q, args.k, "angular", backend.device))
    print(f"ground truth on {backend.device}: {gt_dev:.2f} s")
    if not args.skip_cpu:
        gt_cpu, (_, i_cpu) = _timed(lambda: exact_knn(db, q, args.k, "angular"))
        print(f"ground truth on cpu: {gt_cpu:.2f} s (ids equal: {(i_dev == i_cpu).mean():.4f})")


if __name__ == "__main__":
    main()
