"""A Faiss backend that can be made slower without changing its identity, for
benchmarks/noise.py: the slowdown is read from a file (the build parameters, and so
the run's key in the gate, stay the same).

File content ``spin F``: after each search call, busy-wait until this thread has used
F x the call's own CPU time again: slower code as both wall and CPU time see it.
``sleep F``: sleep F x the call's wall time (a wall-clock slowdown only, invisible to
CPU time). ``work F``: also search the first ceil(F x n) queries again: deterministic
extra instructions for the instruction gate (measured: +13 % CPU for F = 0.2 on IVF64
nprobe 4, 300 queries, since a batch's cost is not linear in its size).
Referenced from experiments as ``noise_plugin:Slowable``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.algorithms.faiss_backend import FaissBackend


class Slowable(FaissBackend):
    def __init__(self, metric: str, dim: int, *, factory: str = "Flat", slow_file: str = "",
                 **kwargs: Any) -> None:
        super().__init__(metric, dim, factory=factory, **kwargs)
        text = Path(slow_file).read_text().split() if slow_file else ["sleep", "0"]
        self.slow_mode, self.fraction = text[0], float(text[1])

    def search_raw(self, queries: np.ndarray, k: int) -> Any:
        if self.fraction <= 0:
            return super().search_raw(queries, k)
        if self.slow_mode == "work":
            extra = max(1, math.ceil(self.fraction * len(queries)))
            super().search_raw(queries[:extra], k)
            return super().search_raw(queries, k)
        if self.slow_mode == "spin":
            c0 = time.thread_time()
            raw = super().search_raw(queries, k)
            until = time.thread_time() + self.fraction * (time.thread_time() - c0)
            while time.thread_time() < until:
                pass
            return raw
        t0 = time.perf_counter()
        raw = super().search_raw(queries, k)
        time.sleep(self.fraction * (time.perf_counter() - t0))
        return raw
