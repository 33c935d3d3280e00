"""A Faiss backend that can be made slower without changing its identity, for
benchmarks/noise.py: the slowdown is read from a file (the build parameters, and so
the run's key in the gate, stay the same).

File content ``sleep F``: after each search call, sleep F x the call's own time (a
wall-clock slowdown of F). ``work F``: also search the first ceil(F x n) queries again
(an instruction-count rise of about F, for the instruction gate, where sleeping is
invisible). Referenced from experiments as ``noise_plugin:Slowable``.
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
        t0 = time.perf_counter()
        raw = super().search_raw(queries, k)
        time.sleep(self.fraction * (time.perf_counter() - t0))
        return raw
