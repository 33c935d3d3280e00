"""`bench process`: read results.json only, write plots/<name>/."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from bench.process.frame import runs_frame
from bench.process.plots import ann_plots
from bench.results import atomic_write_bytes, load_results


def plots_dir(name: str) -> Path:
    return Path(os.environ.get("BENCH_PLOTS", "plots")) / name


def process_results(spec: str, *, svg: bool = False, all_points: bool = False,
                    console: Console | None = None) -> list[Path]:
    results = load_results(spec)
    name = results.get("name") or Path(results["_path"]).parent.name
    out_dir = plots_dir(name)
    df = runs_frame(results)
    written: list[Path] = []
    if df.empty:
        if console:
            console.print(f"[yellow]{name}: no runs to plot[/]")
        return written
    csv_path = out_dir / "runs.csv"
    atomic_write_bytes(csv_path, df.to_csv(index=False).encode())
    written.append(csv_path)
    written += ann_plots(df, out_dir, name, svg=svg, all_points=all_points)
    return written
