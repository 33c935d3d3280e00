"""Timing, memory and environment measurement.

Timing follows ann-benchmarks' discipline with two corrections: one untimed
warm-up, then ``runs`` repeats with ``perf_counter_ns``, keeping the fastest
repeat and reporting latency percentiles *from that same repeat* (mixing the
best total with another repeat's percentiles would describe no real run).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.core.memory import peak_rss_bytes, uss_bytes  # noqa: F401 - re-exported

PACKAGES = (
    "featbench", "numpy", "faiss-cpu", "hnswlib", "annoy", "scikit-learn", "torch",
    "imagehash", "pillow", "usearch", "pynndescent", "ray",
)


@dataclass
class SearchTiming:
    total_s: float  # wall time of the best repeat
    latencies_s: np.ndarray  # per-query latencies of that repeat (batch: total / n each)
    distances: np.ndarray
    ids: np.ndarray
    repeats_s: list[float]

    def summary(self, n_queries: int) -> dict[str, float]:
        lat = self.latencies_s
        return {
            "qps": n_queries / self.total_s if self.total_s > 0 else float("inf"),
            "search_time_s": self.total_s,
            "latency_mean_ms": float(lat.mean() * 1e3),
            "latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
            "latency_p95_ms": float(np.percentile(lat, 95) * 1e3),
            "latency_p99_ms": float(np.percentile(lat, 99) * 1e3),
        }


def time_search(
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    queries: np.ndarray,
    k: int,
    *,
    mode: str,
    runs: int,
    finish: Callable[[Any], tuple[np.ndarray, np.ndarray]] | None = None,
) -> SearchTiming:
    """Warm up once, repeat ``runs`` times, keep the fastest repeat.

    ``search`` is what is timed; ``finish`` (a backend's conversion of the library's
    output to distances and ids, see ``Backend.search_raw``) runs outside the clock."""
    if finish is None:
        def finish(raw: Any) -> tuple[np.ndarray, np.ndarray]:
            return raw
    n = len(queries)
    warm = queries if mode == "batch" else queries[: min(n, 100)]
    if mode == "batch":
        search(warm, k)
    else:
        for i in range(len(warm)):
            search(warm[i : i + 1], k)
    best: SearchTiming | None = None
    repeats = []
    for _ in range(runs):
        if mode == "batch":
            t0 = time.perf_counter_ns()
            raw = search(queries, k)
            total = (time.perf_counter_ns() - t0) * 1e-9
            dist, ids = finish(raw)
            lat = np.full(n, total / n)
        else:
            lat_ns = np.empty(n, dtype=np.int64)
            dist = np.empty((n, k), dtype=np.float32)
            ids = np.empty((n, k), dtype=np.int64)
            clock = time.perf_counter_ns
            for i in range(n):
                q = queries[i : i + 1]
                t0 = clock()
                raw = search(q, k)
                lat_ns[i] = clock() - t0
                d, j = finish(raw)
                dist[i] = d[0]
                ids[i] = j[0]
            total = lat_ns.sum() * 1e-9
            lat = lat_ns * 1e-9
        repeats.append(total)
        if best is None or total < best.total_s:
            best = SearchTiming(total, lat, np.asarray(dist), np.asarray(ids, dtype=np.int64), [])
    assert best is not None
    best.repeats_s = repeats
    return best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(path: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path or Path.cwd(), capture_output=True,
            text=True, timeout=5, check=False,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=path or Path.cwd(),
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info

        found = [
            {k: v for k, v in info.items() if k in ("internal_api", "version", "architecture",
                                                     "num_threads", "prefix")}
            for info in threadpool_info()
        ]
        # threadpoolctl lists libraries in load order, which varies between runs.
        return sorted(found, key=lambda d: json.dumps(d, sort_keys=True, default=str))
    except Exception:  # pragma: no cover - informational only
        return []


def gpu_info() -> list[dict[str, str]]:
    """Model, driver and memory of each NVIDIA GPU (nvidia-smi; empty without one).

    Asked of nvidia-smi rather than torch so recording the environment never imports
    torch or initialises CUDA in the driver."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    keys = ("name", "driver", "memory")
    return [dict(zip(keys, (f.strip() for f in line.split(",")), strict=False))
            for line in out.splitlines() if line.strip()]


def environment(threads: int) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "threads": threads,
        "packages": package_versions(),
        "blas": blas_info(),
        "gpus": gpu_info(),
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS")
                if k in os.environ},
    }
