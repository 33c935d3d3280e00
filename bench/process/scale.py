"""Search at scale: cost and recall against database size, metric facets, thread scaling.

A database-size sweep is read as a power law: each configuration's search time per
query, build time, index memory and recall are fitted as ``y = c * n^b`` by least
squares on log-log axes (``scipy.stats.linregress``), and the exponent ``b`` is what
the table prints: 1.0 for a linear scan, well below 1 for a sublinear index, and
near 0 for recall that holds as the database grows. With two sizes the fit passes
through both points (r^2 = 1 says nothing then); three or more sizes test the law.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import linregress

from bench.core.files import atomic_write_bytes
from bench.process.style import legend_outside, save, slug
from bench.results.record import param_text

#: (column, axis label, exponent column) of the size curves; search time is 1 / QPS
SIZE_PANELS = (
    ("qps", "queries per second", None),
    ("search_s", "search time per query (s)", "search_time_exp"),
    ("build_time_s", "build time (s)", "build_time_exp"),
    ("index_mb", "index memory (MB)", "memory_exp"),
    ("score", "recall", "recall_exp"),
)


def _line(df: pd.DataFrame, without: str) -> pd.Series:
    """One plotted line: everything that identifies a run except the axis ``without``."""
    parts = [df["series_base"].astype(str)]
    for axis in ("metric", "n_database", "threads"):
        if axis != without and axis in df and df[axis].nunique(dropna=True) > 1:
            parts.append(df[axis].map(lambda v, a=axis: f"n={int(v):,}" if a == "n_database"
                                      else f"{int(v)} thr" if a == "threads" else str(v)))
    params = df.apply(lambda r: " ".join(
        p for p in (param_text(_json(r["build"])), param_text(_json(r["query"]))) if p), axis=1)
    parts.append(params)
    out = parts[0]
    for part in parts[1:]:
        out = out + " " + part.astype(str)
    return out.str.strip()


def _json(text: str) -> dict:
    import json

    return json.loads(text) if isinstance(text, str) else {}


def size_frame(ok: pd.DataFrame) -> pd.DataFrame:
    """Runs of a size sweep with their line name; empty when there is no sweep."""
    if "n_database" not in ok or ok["n_database"].nunique(dropna=True) < 2:
        return ok.iloc[0:0]
    df = ok.copy()
    df["search_s"] = 1.0 / pd.to_numeric(df["qps"], errors="coerce")
    df["line"] = _line(df, "n_database")
    return df


def growth_exponents(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (line, k): the fitted exponent of each size panel and its r^2."""
    rows = []
    for (line, k), group in df.groupby(["line", "k"], sort=True):
        group = group.sort_values("n_database")
        row = {"configuration": line, "k": int(k), "sizes": len(group),
               "n_min": int(group["n_database"].min()), "n_max": int(group["n_database"].max())}
        for column, _, name in SIZE_PANELS:
            if name is None:
                continue
            x = np.log(group["n_database"].to_numpy(dtype=float))
            y = pd.to_numeric(group[column], errors="coerce").to_numpy(dtype=float)
            good = np.isfinite(y) & (y > 0)
            if good.sum() < 2 or np.ptp(x[good]) == 0:
                row[name], row[name + "_r2"] = np.nan, np.nan
                continue
            fit = linregress(x[good], np.log(y[good]))
            row[name] = float(fit.slope)
            row[name + "_r2"] = float(fit.rvalue**2)
        rows.append(row)
    return pd.DataFrame(rows)


def write_exponents(table: pd.DataFrame, out_dir: Path) -> Path:
    path = out_dir / "tables" / "growth_exponents.csv"
    atomic_write_bytes(path, table.to_csv(index=False, float_format="%.3f").encode())
    return path


def size_curves(df: pd.DataFrame, path: Path, *, title: str, svg: bool) -> list[Path]:
    """Four log-log panels against database size, one line per configuration."""
    panels = [p for p in SIZE_PANELS if p[0] != "search_s"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    lines = sorted(df["line"].unique())
    cmap = plt.get_cmap("tab20" if len(lines) > 10 else "tab10")
    for ax, (column, ylabel, _) in zip(axes.ravel(), panels, strict=True):
        for i, line in enumerate(lines):
            part = df[df["line"] == line].sort_values("n_database")
            y = pd.to_numeric(part[column], errors="coerce")
            if y.notna().sum() == 0:
                continue
            ax.plot(part["n_database"], y, marker="o", color=cmap(i % cmap.N), label=line)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel(ylabel + " (log)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("database size (log)")
    legend_outside(axes[0, 1])
    fig.suptitle(title)
    return save(fig, path, svg=svg)


def exponent_figure(table: pd.DataFrame, path: Path, *, title: str, svg: bool) -> list[Path]:
    """The exponent table as a figure, so the report shows it beside the curves."""
    cols = ["configuration", "k", "sizes", "search_time_exp", "build_time_exp", "memory_exp",
            "recall_exp"]
    shown = table[cols].copy()
    for c in cols[3:]:
        shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}")
    fig, ax = plt.subplots(figsize=(12, 0.6 + 0.32 * (len(shown) + 1)))
    ax.axis("off")
    labels = ["configuration", "k", "sizes", "search time b", "build time b", "memory b",
              "recall b"]
    tab = ax.table(cellText=shown.to_numpy(), colLabels=labels, loc="center", cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.auto_set_column_width(list(range(len(labels))))
    ax.set_title(f"{title}: growth exponents b of y = c * n^b (log-log least squares)")
    return save(fig, path, svg=svg)


def metric_facets(ok: pd.DataFrame, k: int, path: Path, colors: dict, *, title: str,
                  label: str, svg: bool) -> list[Path]:
    """Recall against QPS, one panel per metric, the same colour per series in each."""
    metrics = sorted(ok["metric"].dropna().unique())
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.5), sharey=True,
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = ok[ok["metric"] == metric]
        for series, group in part.groupby("series_base", sort=True):
            group = group.sort_values("score")
            ax.plot(group["score"], group["qps"], marker="o", linestyle="-",
                    color=colors.get(group["series"].iloc[0]), label=series)
        ax.set_yscale("log")
        ax.set_title(f"metric {metric}")
        ax.set_xlabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("queries per second (log)")
    legend_outside(axes[0][-1])
    fig.suptitle(f"{title}: k={k}")
    return save(fig, path, svg=svg)


def thread_scaling(ok: pd.DataFrame, k: int, path: Path, *, title: str,
                   svg: bool) -> list[Path]:
    """QPS against query threads, one line per configuration (log-log axes)."""
    df = ok.copy()
    df["line"] = _line(df, "threads")
    fig, ax = plt.subplots(figsize=(8, 5))
    threads = sorted(int(t) for t in df["threads"].dropna().unique())
    for line, group in df.groupby("line", sort=True):
        group = group.sort_values("threads")
        ax.plot(group["threads"], group["qps"], marker="o", label=line)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(threads, [str(t) for t in threads])
    ax.set_xlabel("query threads")
    ax.set_ylabel("queries per second (log)")
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    ax.set_title(f"{title}: thread scaling, k={k}")
    return save(fig, path, svg=svg)


def stem(prefix: str, k: int, metric: str | None = None) -> str:
    return f"{prefix}_k{k}" + (f"_{slug(metric)}" if metric else "")
