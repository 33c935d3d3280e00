"""The configured roots: every file featbench writes lives under one of these."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_ROOT_ENV = "BENCH_RESULTS"
CACHE_ROOT_ENV = "BENCH_CACHE"
PLOTS_ROOT_ENV = "BENCH_PLOTS"


def results_root() -> Path:
    return Path(os.environ.get(RESULTS_ROOT_ENV, "results"))


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ROOT_ENV, ".cache/featbench"))


def plots_root() -> Path:
    return Path(os.environ.get(PLOTS_ROOT_ENV, "plots"))
