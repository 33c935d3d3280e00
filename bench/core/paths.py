"""The configured roots: every file featbench writes lives under one of these."""

from __future__ import annotations

import os
import re
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


#: longest experiment name: the name is a folder under each root
MAX_NAME = 100
_SAFE_NAME = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_NAME}}}")


def folder_name_problem(value: object) -> str | None:
    """Why ``value`` cannot be the folder of an experiment under a root, or None.

    One path component of letters, digits and ``._-``: never a path (``../x``, ``/tmp``),
    never the root itself (``""``, ``.``), so nothing is written outside the roots.
    """
    if isinstance(value, str) and _SAFE_NAME.fullmatch(value) and value not in (".", ".."):
        return None
    return (f"expected one folder name of letters, digits and ._- (at most {MAX_NAME} "
            f"characters, not . or ..), got {value!r}")
