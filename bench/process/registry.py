"""The figure registry: ``@figure(section, caption)`` on a function makes it a figure.

Why: adding a figure used to mean a function, a hand-wired call in
``process/__init__.py`` and a file-name regex in ``report.py``. Now one module in
``bench/process/figures/`` with a decorated function is enough: the modules are
discovered (as backends are, see ``bench.core.discovery``), every registered
function is called with one :class:`FigureContext`, and the report groups what it
returned by section with its caption.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.discovery import submodules
from bench.core.errors import BenchError

#: a figure returns paths (captioned with the registered caption) or (path, caption) pairs
Output = Path | tuple[Path, str]
FigureFn = Callable[["FigureContext"], list[Output]]


@dataclass(frozen=True)
class FigureContext:
    """Everything a figure may read: the finished runs of one results folder."""

    ok: pd.DataFrame
    raw: dict[str, dict[str, Any]]
    results: dict[str, Any]
    out_dir: Path
    colors: dict
    title: str
    label: str
    svg: bool = False
    all_points: bool = False
    query_items: list[dict[str, Any]] | None = None
    #: the attack table's family order, as the run stage saved it in the items file
    attack_families: list[str] | None = None


@dataclass(frozen=True)
class Figure:
    name: str
    section: str
    caption: str
    fn: FigureFn
    order: int = 100


@dataclass
class Written:
    """One file a figure wrote, with where the report shows it."""

    path: Path
    section: str
    caption: str = ""


_FIGURES: dict[str, Figure] = {}
_loaded = False
PACKAGE = "bench.process.figures"


def figure(section: str, caption: str = "", *, order: int = 100,
           name: str | None = None) -> Callable[[FigureFn], FigureFn]:
    """Register ``fn`` as a figure shown under ``section``; lower ``order`` comes first."""

    def decorator(fn: FigureFn) -> FigureFn:
        key = name or f"{fn.__module__}.{fn.__qualname__}"
        existing = _FIGURES.get(key)
        if existing is not None and existing.fn is not fn:
            raise BenchError(f"figure {key!r} is registered twice")
        _FIGURES[key] = Figure(key, section, caption, fn, order)
        return fn

    return decorator


def unregister(name: str) -> None:
    _FIGURES.pop(name, None)


def registered() -> list[Figure]:
    """Built-in figure modules are imported on first use, so adding a module adds a figure."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in submodules(PACKAGE):
            importlib.import_module(module)
    return sorted(_FIGURES.values(), key=lambda f: (f.order, f.name))


def draw_all(ctx: FigureContext) -> list[Written]:
    written: list[Written] = []
    for fig in registered():
        for out in fig.fn(ctx):
            path, caption = out if isinstance(out, tuple) else (out, fig.caption)
            written.append(Written(path, fig.section, caption))
    return written


def sections() -> list[str]:
    """Section order of the report: the order figures are registered in."""
    return list(dict.fromkeys(f.section for f in registered())) + ["Other"]
