"""What an executor is asked to do, and what it reports back.

A task is plain data (paths, parameters), never arrays: workers memory-map the
prepared database and queries from the cache instead of receiving pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.config.timing import TimingOptions


@dataclass
class QueryPoint:
    index: int  # position in the build point's query list
    params: dict[str, Any]
    k: int
    run_id: str


_DEFAULT = TimingOptions()


@dataclass
class TimingPlan:
    """How each query point is timed (the experiment's timing fields; see bench.core.stats)."""

    runs: int = _DEFAULT.runs  # at least this many samples per point
    min_sample_s: float = _DEFAULT.min_sample_s  # each sample lasts at least this long
    target_ci: float = _DEFAULT.target_ci  # stop when the median's 95 % CI is within +-this
    max_point_s: float = _DEFAULT.max_point_s  # ... or when the point spent this long
    counter: str = _DEFAULT.counter  # time | instructions

    @classmethod
    def of(cls, options: TimingOptions) -> TimingPlan:
        """The experiment's plan; one sample per point when it says ``timing: false``
        (its speed figures mean nothing, so no time is spent on them)."""
        if not getattr(options, "timing", True):
            return cls(1, 0.0, options.target_ci, 0.0, options.counter)
        return cls(options.runs, options.min_sample_s, options.target_ci,
                   options.max_point_s, options.counter)


@dataclass
class BuildTask:
    algorithm: str
    build: dict[str, Any]
    points: list[QueryPoint]
    metric: str
    dim: int
    database_path: str
    queries_path: str
    mode: str
    timing: TimingPlan
    threads: int
    seed: int
    timeout_s: float
    memory_limit_bytes: int | None
    #: threads while building (None: ``threads``); ``threads`` are the query threads
    build_threads: int | None = None


@dataclass
class BuildReport:
    build_time_s: float
    #: growth of the worker's anonymous (private, non-file) memory over the build; the
    #: results.json name is kept, but file pages of the memory-mapped data never count
    index_uss_bytes: int
    index_bytes: int | None
    probe: dict[str, float] = field(default_factory=dict)  # the worker's calibration probe
    build_cpu_s: float | None = None  # process CPU time of the build (all its threads)


@dataclass
class PointResult:
    point: QueryPoint
    timing: dict[str, Any]  # qps, statistics, samples and latency percentiles
    repeats_s: list[float]  # seconds per pass over the queries, one per sample
    ids: np.ndarray
    distances: np.ndarray
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class NodeReport:
    """Where a build point runs: sent first, so the progress bar names the node and
    every record carries it (speed is only comparable between equal CPU models)."""

    hostname: str
    cpu: str
    cpu_count: int | None
    ray_node_id: str | None = None

    def short(self) -> str:
        """Name shown in the progress bar: the Ray node id tells apart nodes of one host."""
        return f"{self.hostname}:{self.ray_node_id[:6]}" if self.ray_node_id else self.hostname


@dataclass
class Failure:
    status: str  # failed | timeout | oom | crashed
    stage: str  # build | search | worker
    message: str
    point: QueryPoint | None = None  # None: applies to the build and every unfinished point
    #: the node or its Ray worker vanished: not a property of the configuration, so a
    #: re-run (resume) measures these points again instead of keeping the failure
    lost: bool = False
