"""The ANN trade-off plots: recall vs QPS Pareto fronts, recall vs k, build cost vs recall.

Figures take a frame of finished runs (``frame.ok_runs``) and the experiment's
fixed series colours, and return the files they wrote.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.process.pareto import pareto_front
from bench.process.style import (
    RECALL_CLIP,
    clip_recall,
    legend_outside,
    plain_log,
    plt,
    recall_axis,
    save,
)

THRESHOLDS = (0.90, 0.95, 0.99)
#: builds labelled with their parameters in the cost plots, when there are this few
MAX_ANNOTATED = 16


def _thresholds(ax: plt.Axes) -> None:
    """Faint guides at the recall levels of the best-QPS table, so plot and table agree."""
    lo, hi = ax.get_xlim()
    for t in THRESHOLDS:
        if lo < t < hi:
            ax.axvline(t, color="0.55", lw=0.8, ls=":", zorder=0)


def recall_qps(df: pd.DataFrame, k: int, path: Path, colors: dict, *, title: str,
               label: str, all_points: bool, svg: bool) -> list[Path]:
    """Per series the Pareto front of (score, QPS); with all_points every run as well."""
    fig, ax = plt.subplots(figsize=(9, 5.5))
    unstable = False
    for series, group in df.groupby("series", sort=True):
        pts = group.dropna(subset=["score", "qps"])
        pts = pts[pts["qps"] > 0]
        if pts.empty:
            continue
        pts = pts.assign(score=clip_recall(pts["score"]))
        front = pareto_front(pts, "score", "qps")
        ax.plot(front["score"], front["qps"], "-o", color=colors[series], label=series, ms=4.5,
                lw=1.6)
        if all_points:
            ax.scatter(pts["score"], pts["qps"], color=colors[series], s=14, alpha=0.55,
                       edgecolors="none")
        unstable |= _uncertainty(ax, pts if all_points else front, colors[series])
    recall_axis(ax, df["score"], f"{label}@{k}")
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    ax.set_ylabel("queries per second (log scale)")
    _thresholds(ax)
    shown = "every run; lines: Pareto fronts" if all_points else "Pareto fronts"
    if unstable:
        shown += "; open rings: CI target not reached"
    ax.set_title(f"{title}: {label}@{k} vs throughput ({shown})")
    ax.grid(True, which="both", alpha=0.25)
    legend_outside(ax, "series")
    return save(fig, path, svg=svg)


def _uncertainty(ax: plt.Axes, pts: pd.DataFrame, color: str) -> bool:
    """Error bars (the 95 % CI of each point's median QPS) and an open ring around points
    whose sampling stopped before reaching its CI target; True when there was one."""
    if "qps_low" in pts:
        bars = pts.dropna(subset=["qps_low", "qps_high"])
        if not bars.empty:
            ax.errorbar(bars["score"], bars["qps"],
                        yerr=[(bars["qps"] - bars["qps_low"]).clip(lower=0),
                              (bars["qps_high"] - bars["qps"]).clip(lower=0)],
                        fmt="none", ecolor=color, elinewidth=0.8, capsize=2, alpha=0.8)
    if "stable" not in pts:
        return False
    shaky = pts[pts["stable"].astype("boolean").eq(False).fillna(False).astype(bool)]
    if not shaky.empty:
        ax.scatter(shaky["score"], shaky["qps"], s=70, facecolors="none", edgecolors=color,
                   linewidths=1.0)
    return not shaky.empty


def cost_vs_recall(df: pd.DataFrame, k: int, column: str, ylabel: str, what: str, path: Path,
                   colors: dict, *, title: str, label: str, svg: bool) -> list[Path]:
    """One point per build: its cost against the best score any of its query settings got."""
    best = df.sort_values("score").groupby(["series", "build"]).tail(1)
    best = best.dropna(subset=[column, "score"])
    best = best[best[column] > 0]
    if best.empty:
        return []
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for series, group in best.groupby("series", sort=True):
        ax.scatter(clip_recall(group["score"]), group[column], color=colors[series], label=series,
                   s=36, edgecolors="white", linewidths=0.5)
    if len(best) <= MAX_ANNOTATED:
        for _, row in best.iterrows():
            ax.annotate(row["build_label"].removeprefix(row["series"]).strip(" []"),
                        (min(max(row["score"], RECALL_CLIP[0]), RECALL_CLIP[1]), row[column]),
                        xytext=(5, 4), textcoords="offset points", fontsize="x-small",
                        color="0.25")
    recall_axis(ax, best["score"], f"best {label}@{k} of the build")
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: {what} vs best {label}@{k}, one point per build")
    ax.grid(True, which="both", alpha=0.25)
    legend_outside(ax, "series")
    return save(fig, path, svg=svg)


def recall_vs_k(df: pd.DataFrame, path: Path, colors: dict, *, title: str, label: str,
                svg: bool) -> list[Path]:
    """Best score over all configurations of a series at each k."""
    best = df.groupby(["series", "k"])["score"].max().reset_index()
    if best["k"].nunique() < 2:
        return []
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (series, group) in enumerate(best.groupby("series", sort=True)):
        group = group.sort_values("k")
        # shrinking markers of different shapes keep series that coincide (all at 1.0) visible
        ax.plot(group["k"], group["score"], "-", marker="osD^vP*Xh<>"[i % 11], color=colors[series],
                label=series, ms=max(3.0, 10 - 1.2 * i), mfc="none" if i % 2 else colors[series])
    ks = sorted(best["k"].unique())
    if ks[-1] / max(ks[0], 1) >= 8:
        ax.set_xscale("log")
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("k (neighbours returned)")
    ax.set_ylabel(f"best {label}@k over configurations")
    lo = float(best["score"].min())
    ax.set_ylim(max(0.0, lo - 0.05) if lo > 0.3 else 0.0, 1.01)
    ax.set_title(f"{title}: {label} vs k")
    ax.grid(True, alpha=0.25)
    legend_outside(ax, "series")
    return save(fig, path, svg=svg)


def ann_plots(df: pd.DataFrame, out_dir: Path, colors: dict, *, title: str, label: str,
              all_points: bool = False, svg: bool = False) -> list[Path]:
    """The core trade-off plots, one set per k, plus recall vs k."""
    written: list[Path] = []
    for k, group in df.groupby("k", sort=True):
        k = int(k)
        written += recall_qps(group, k, out_dir / f"recall_qps_k{k}.png", colors, title=title,
                              label=label, all_points=all_points, svg=svg)
        written += cost_vs_recall(
            group, k, "build_time_s", "build time (s, log scale)", "build time",
            out_dir / f"build_time_k{k}.png", colors, title=title, label=label, svg=svg)
        written += cost_vs_recall(
            group, k, "index_mb", "index memory (MB, log scale)", "index memory",
            out_dir / f"index_memory_k{k}.png", colors, title=title, label=label, svg=svg)
    written += recall_vs_k(df, out_dir / "recall_k.png", colors, title=title, label=label,
                           svg=svg)
    return written
