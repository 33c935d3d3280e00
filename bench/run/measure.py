"""Timing, memory and environment measurement.

Every query point is timed as *samples*: one untimed warm-up pass (whose results
are the ones scored and whose duration calibrates the loop count), then samples
that each repeat the queries for at least ``min_sample_s`` (a batch call repeated,
or the single-query loop run over the queries again), drawn until the 95 % interval
of the median is within ``target_ci`` or the point has spent ``max_point_s`` (at
least ``runs`` samples).
The points of one build are sampled round-robin (p1 p2 p3 p1 p2 p3 ...), so a
noisy second of the machine lands on one sample of several points, not on every
sample of one point. The headline ``qps`` is the median sample (the lower median
for an even count: a real sample), and the latency percentiles come from that
same sample. Statistics: bench.core.stats.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.core import stats
from bench.core.memory import peak_rss_bytes, uss_bytes  # noqa: F401 - re-exported
from bench.run.executors.task import NodeReport, TimingPlan

PACKAGES = (
    "featbench", "numpy", "faiss-cpu", "hnswlib", "annoy", "scikit-learn", "torch",
    "imagehash", "pillow", "usearch", "pynndescent", "ray",
)

Search = Callable[[np.ndarray, int], Any]


def _identity(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    return raw


@dataclass
class Sample:
    wall_s: float  # the whole sample
    cpu_s: float  # process CPU time over the sample
    loops: int  # passes over the queries
    latencies_ns: np.ndarray | None = None  # single mode: every call of the sample

    def qps(self, n: int) -> float:
        return n * self.loops / self.wall_s if self.wall_s > 0 else math.inf


@dataclass
class PointSampler:
    """The measurement state of one query point of a build.

    ``prepare`` (the backend's ``set_query_params`` for this point) runs before the
    warm-up and before every sample, because the points of a build take turns."""

    search: Search
    queries: np.ndarray
    k: int
    mode: str
    plan: TimingPlan
    prepare: Callable[[], None] = lambda: None
    finish: Callable[[Any], tuple[np.ndarray, np.ndarray]] = _identity
    samples: list[Sample] = field(default_factory=list)
    distances: np.ndarray | None = None
    ids: np.ndarray | None = None
    loops: int = 1

    @property
    def spent_s(self) -> float:
        return sum(s.wall_s for s in self.samples)

    def qps_samples(self) -> list[float]:
        return [s.qps(len(self.queries)) for s in self.samples]

    def done(self) -> bool:
        p = self.plan
        return stats.should_stop(self.qps_samples(), self.spent_s, runs=p.runs,
                                 target_ci=p.target_ci, max_point_s=p.max_point_s)

    def warm_up(self) -> None:
        """One untimed pass (its results are scored), whose duration also sets the loop
        count that makes a sample last ``min_sample_s``: a warm-up slower than the steady
        state gives too few loops, which ``take_sample`` tops up (no extra pass spent)."""
        self.prepare()
        n = len(self.queries)
        t0 = time.perf_counter_ns()
        if self.mode == "batch":
            dist, ids = self.finish(self.search(self.queries, self.k))
        else:
            dist = np.empty((n, self.k), dtype=np.float32)
            ids = np.empty((n, self.k), dtype=np.int64)
            for i in range(n):
                d, j = self.finish(self.search(self.queries[i : i + 1], self.k))
                dist[i], ids[i] = d[0], j[0]
        one = (time.perf_counter_ns() - t0) * 1e-9
        self.distances, self.ids = np.asarray(dist), np.asarray(ids, dtype=np.int64)
        self.loops = max(1, math.ceil(self.plan.min_sample_s / one)) if one > 0 else 1

    def _passes(self, loops: int) -> np.ndarray | None:
        """``loops`` passes over the queries; single mode returns every call's ns."""
        search, queries, k = self.search, self.queries, self.k
        if self.mode == "batch":
            for _ in range(loops):
                search(queries, k)
            return None
        n = len(queries)
        rows = [queries[i : i + 1] for i in range(n)]
        lat = np.empty(n * loops, dtype=np.int64)
        clock = time.perf_counter_ns
        j = 0
        for _ in range(loops):
            for q in rows:
                t0 = clock()
                search(q, k)
                lat[j] = clock() - t0
                j += 1
        return lat

    def take_sample(self) -> Sample:
        """One timed sample of ``loops`` passes, topped up with more passes while it
        is still shorter than ``min_sample_s`` (the machine got faster since warm-up)."""
        self.prepare()
        loops, parts = 0, []
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        todo = self.loops
        while True:
            lat = self._passes(todo)
            loops += todo
            if lat is not None:
                parts.append(lat)
            wall = (time.perf_counter_ns() - t0) * 1e-9
            if wall >= self.plan.min_sample_s:
                break
            todo = 1
        cpu = (time.process_time_ns() - c0) * 1e-9
        if parts:  # single mode: the sum of the calls, not the loop around them
            lat_ns = np.concatenate(parts)
            wall = float(lat_ns.sum()) * 1e-9
        else:
            lat_ns = None
        sample = Sample(wall, cpu, loops, lat_ns)
        self.samples.append(sample)
        return sample

    def summary(self) -> dict[str, Any]:
        """The record's timing fields: statistics of the samples, and the latency
        percentiles of the median sample (the one whose QPS is the headline)."""
        n = len(self.queries)
        qps = self.qps_samples()
        out = stats.summarize(qps, self.plan.target_ci)
        mid = self.samples[stats.median_index(qps)]
        if mid.latencies_ns is not None:
            lat = mid.latencies_ns * 1e-9
        else:
            lat = np.full(1, mid.wall_s / (n * mid.loops))
        out.update({
            "search_time_s": mid.wall_s / mid.loops,  # one pass over the queries
            "latency_mean_ms": float(lat.mean() * 1e3),
            "latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
            "latency_p95_ms": float(np.percentile(lat, 95) * 1e3),
            "latency_p99_ms": float(np.percentile(lat, 99) * 1e3),
            "sample_loops": [s.loops for s in self.samples],
            # QPS over the process's own CPU time: what the search cost when the machine
            # is shared (time spent descheduled is not in it); `bench compare --counter cpu`
            "samples_cpu_qps": [n * s.loops / s.cpu_s if s.cpu_s > 0 else math.inf
                                for s in self.samples],
            "wall_time_s": self.spent_s,
            "cpu_time_s": sum(s.cpu_s for s in self.samples),
            "min_sample_s": self.plan.min_sample_s,
            "target_ci": self.plan.target_ci,
            "counter": self.plan.counter,
        })
        return out

    def repeats_s(self) -> list[float]:
        return [s.wall_s / s.loops for s in self.samples]


def round_robin(samplers: list[PointSampler],
                on_error: Callable[[int, Exception], None] | None = None) -> Iterator[int]:
    """Sample the points in turns (p1 p2 p3 p1 p2 p3 ...) until each one's stop rule
    holds; yields a point's position as soon as it is finished. A point whose sample
    raises is dropped (``on_error``) and the others go on."""
    active = list(range(len(samplers)))
    while active:
        still = []
        for i in active:
            try:
                samplers[i].take_sample()
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(i, exc)
                continue
            if samplers[i].done():
                yield i
            else:
                still.append(i)
        active = still


@dataclass
class SearchTiming:
    """One point measured on its own (``time_search``): benchmarks and tests."""

    total_s: float  # one pass over the queries in the median sample
    latencies_s: np.ndarray
    distances: np.ndarray
    ids: np.ndarray
    repeats_s: list[float]
    summary_fields: dict[str, Any]

    def summary(self, n_queries: int) -> dict[str, Any]:
        return self.summary_fields


def time_search(search: Search, queries: np.ndarray, k: int, *, mode: str, runs: int,
                finish: Callable[[Any], tuple[np.ndarray, np.ndarray]] | None = None,
                plan: TimingPlan | None = None) -> SearchTiming:
    """Warm up, then samples of one point. Without a ``plan``: exactly ``runs`` samples of
    one pass each. ``finish`` (see ``Backend.search_raw``) runs outside the clock."""
    plan = plan or TimingPlan(runs=runs, min_sample_s=0.0, target_ci=math.inf,
                              max_point_s=0.0)
    sampler = PointSampler(search, queries, k, mode, plan, finish=finish or _identity)
    sampler.warm_up()
    for _ in round_robin([sampler]):
        pass
    summary = sampler.summary()
    mid = sampler.samples[stats.median_index(sampler.qps_samples())]
    lat = (mid.latencies_ns * 1e-9 if mid.latencies_ns is not None
           else np.full(len(queries), summary["search_time_s"] / len(queries)))
    assert sampler.distances is not None and sampler.ids is not None
    return SearchTiming(summary["search_time_s"], lat, sampler.distances, sampler.ids,
                        sampler.repeats_s(), summary)


def calibration_probe(seconds: float = 0.05) -> dict[str, float]:
    """A fixed kernel timed at the start of every worker: a float32 matrix product of
    fixed size, one thread per the worker's limits. Its rate says how fast this process
    on this machine is right now, so a slow worker is visible in the record and the
    gate can normalise by it. The median of samples of about ``seconds`` / 5 each."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256), dtype=np.float32)
    b = rng.standard_normal((256, 256), dtype=np.float32)
    a @ b  # warm-up
    t0 = time.perf_counter_ns()
    a @ b
    one = max((time.perf_counter_ns() - t0) * 1e-9, 1e-6)
    loops = max(1, int(seconds / 5 / one))
    rates = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            a @ b
        rates.append(loops * 2 * 256**3 / ((time.perf_counter_ns() - t0) * 1e-9) / 1e9)
    return {"gflops": float(np.median(rates)), "cv": stats.cv(rates)}


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


def node_report(ray_node_id: str | None = None) -> NodeReport:
    """The machine this process runs on, as every record carries it (per node on a
    cluster, where the header's environment describes only the driver)."""
    return NodeReport(hostname=socket.gethostname(), cpu=cpu_model(),
                      cpu_count=os.cpu_count(), ray_node_id=ray_node_id)


def environment(threads: int) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
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
