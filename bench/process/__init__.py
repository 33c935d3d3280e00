"""`bench process`: read results/<name>/ only, write plots/<name>/.

Output (see ``process_results``): runs.csv, tables/*.csv, one PNG (and SVG on
request) per plot, galleries/<feature set>/{correct,incorrect}/*.png for item
experiments, and report.html tying them together.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from bench.core.errors import BenchError
from bench.core.files import atomic_write_bytes
from bench.core.kinds import kind_of
from bench.core.paths import folder_name_problem, plots_root
from bench.process.copydetect import copy_detection_table, report_rows, write_table
from bench.process.frame import ok_runs, runs_frame, score_label
from bench.process.galleries import SELECT_MODES, GalleryOptions, gallery_outputs
from bench.process.registry import FigureContext, draw_all
from bench.process.report import write_report
from bench.process.style import series_colors
from bench.process.tables import best_qps, report_view, write_best_qps
from bench.results import load_results

__all__ = ["SELECT_MODES", "GalleryOptions", "plots_dir", "process_results"]

logger = logging.getLogger(__name__)


def plots_dir(name: str) -> Path:
    return plots_root() / name


def output_name(results: dict) -> str:
    """The plots folder of a results file: its ``name`` only when that is one safe folder
    name (a results.json whose name is a path must not write anywhere else)."""
    name = results.get("name")
    if name is None:
        name = Path(results["_path"]).parent.name
    problem = folder_name_problem(name)
    if problem is not None:
        raise BenchError(f"{results['_path']}: name: {problem}")
    return str(name)


def _warn(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    else:
        logger.warning(message)


def process_results(
    spec: str | Path, *, svg: bool = False, all_points: bool = False, max_galleries: int = 60,
    gallery_select: str = "auto", seed: int | None = None, gallery_run: str | None = None,
    self_contained: bool = False, console: Console | None = None,
) -> list[Path]:
    """Write every plot, table, gallery and the report for one results file.

    ``spec`` is an experiment name, a results folder or a results.json path.
    ``max_galleries`` caps galleries per feature set (0: none); ``gallery_select``
    is auto | failures | sample | per-attack; ``seed`` (default: the experiment's)
    drives the sampling; ``gallery_run`` names the run drawn (id prefix, label or
    configuration; default: the best run at the largest k). Returns the files
    written, report.html last.
    """
    results = load_results(spec)
    name = output_name(results)
    out_dir = plots_dir(name)
    kind = kind_of(results)
    if kind is not None:
        return kind.figures(results, out_dir, svg)
    df = runs_frame(results)
    raw = {r["id"]: r for r in results.get("runs", [])}
    written: list[Path] = []
    captions: dict[Path, tuple[str, str]] = {}
    notes: list[str] = []
    if not df.empty:
        csv_path = out_dir / "runs.csv"
        atomic_write_bytes(csv_path, df.to_csv(index=False).encode())
        written.append(csv_path)
    ok = ok_runs(df)
    label = score_label(ok) if not ok.empty else "recall"
    views = []
    copy_detection = None
    if ok.empty:
        notes.append("No finished runs with a score: nothing to plot.")
        _warn(console, f"{name}: no finished runs to plot")
    else:
        colors = series_colors(list(df["series"].unique()))
        kw = {"title": name, "svg": svg}
        table = best_qps(ok, raw)
        first = _first_items(results)
        ctx = FigureContext(ok=ok, raw=raw, results=results, out_dir=out_dir, colors=colors,
                            label=label, all_points=all_points,
                            query_items=first.get("queries"),
                            attack_families=first.get("attack_families"), **kw)
        drawn = draw_all(ctx)
        captions = {w.path: (w.section, w.caption) for w in drawn}
        written += [w.path for w in drawn]
        written.append(write_best_qps(table, out_dir))
        views = report_view(table)
        table_cd = copy_detection_table(ok, raw)
        written += write_table(table_cd, out_dir)
        copy_detection = report_rows(table_cd)
    options = GalleryOptions(max_galleries=max_galleries, select=gallery_select, seed=seed,
                             run=gallery_run)
    galleries = gallery_outputs(results, ok, out_dir, options)
    for g in galleries:
        written += [f["path"] for f in g.files]
        if g.warnings:
            _warn(console, f"{len(g.warnings)} gallery image(s) missing or unreadable, drawn "
                           f"as grey tiles; first: {g.warnings[0]}")
    written.append(write_report(out_dir, results=results, df=df, written=written,
                                best_qps=views, score_label=label, galleries=galleries,
                                notes=notes, embed=self_contained,
                                copy_detection=copy_detection, captions=captions))
    return written


def _first_items(results: dict) -> dict:
    """Items file of the first item feature set (attack names and families live there)."""
    from bench.process.galleries import load_items

    folder = Path(results["_path"]).parent
    for key, desc in ((results.get("dataset") or {}).get("feature_sets") or {}).items():
        items = load_items(folder, key, desc or {})
        if items is not None:
            return items
    return {}
