"""Backends that misbehave on purpose, referenced from test experiments as
``plugins_for_tests:Name`` (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import time

import numpy as np

from bench.algorithms.base import Backend


class _Exact(Backend):
    metrics = ("euclidean", "angular", "ip")

    def build(self, data: np.ndarray) -> None:
        self.data = np.asarray(data, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        d = ((queries[:, None, :] - self.data[None, :, :]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, ids, 1), ids.astype(np.int64)


class Crasher(_Exact):
    """Kills its own process during build, like a segfault in a C++ library."""

    def build(self, data: np.ndarray) -> None:
        os.abort()


class Sleeper(_Exact):
    """Sleeps in build; with a short timeout the harness must give up on it."""

    def __init__(self, metric: str, dim: int, *, seconds: float = 30.0) -> None:
        super().__init__(metric, dim)
        self.seconds = seconds

    def build(self, data: np.ndarray) -> None:
        time.sleep(self.seconds)
        super().build(data)


class SlowSearch(_Exact):
    """Adds a fixed delay to each search call: a speed regression for the gate."""

    def __init__(self, metric: str, dim: int, *, delay_s: float = 0.0) -> None:
        super().__init__(metric, dim)
        self.delay_s = delay_s

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().search(queries, k)


class Duplicator(_Exact):
    """Returns the nearest id k times: must be rejected, not scored 100 %."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        d, ids = super().search(queries, 1)
        return np.repeat(d, k, axis=1), np.repeat(ids, k, axis=1)


class ThreadProbe(_Exact):
    """Reports the thread counts it saw while building and while searching."""

    def build(self, data: np.ndarray) -> None:
        from threadpoolctl import threadpool_info

        super().build(data)
        self.build_threads = self.threads
        self.build_blas = min((p["num_threads"] for p in threadpool_info()), default=-1)

    def extra_metrics(self) -> dict[str, float]:
        return {"build_threads_seen": float(self.build_threads),
                "build_blas_threads": float(self.build_blas),
                "search_threads_seen": float(self.threads)}


class CrashWhileFlagged(_Exact):
    """Crashes during build while the file ``flag`` exists: a fault that goes away."""

    def __init__(self, metric: str, dim: int, *, flag: str = "") -> None:
        super().__init__(metric, dim)
        self.flag = flag

    def build(self, data: np.ndarray) -> None:
        if self.flag and os.path.exists(self.flag):
            os.abort()
        super().build(data)
