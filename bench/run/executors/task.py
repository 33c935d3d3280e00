"""What an executor is asked to do, and what it reports back.

A task is plain data (paths, parameters), never arrays: workers memory-map the
prepared database and queries from the cache instead of receiving pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class QueryPoint:
    index: int  # position in the build point's query list
    params: dict[str, Any]
    k: int
    run_id: str


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
    runs: int
    threads: int
    seed: int
    timeout_s: float
    memory_limit_bytes: int | None


@dataclass
class BuildReport:
    build_time_s: float
    #: growth of the worker's anonymous (private, non-file) memory over the build; the
    #: results.json name is kept, but file pages of the memory-mapped data never count
    index_uss_bytes: int
    index_bytes: int | None


@dataclass
class PointResult:
    point: QueryPoint
    timing: dict[str, float]
    repeats_s: list[float]
    ids: np.ndarray
    distances: np.ndarray
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Failure:
    status: str  # failed | timeout | oom | crashed
    stage: str  # build | search | worker
    message: str
    point: QueryPoint | None = None  # None: applies to the build and every unfinished point
