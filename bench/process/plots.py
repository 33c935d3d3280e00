"""The ANN trade-off plots: recall vs QPS Pareto fronts, build time and index memory.

The recall axis uses a logit scale, which spreads 0.9, 0.99 and 0.999 evenly
like ann-benchmarks' plots do: on a linear axis every good configuration is
crushed into the last few pixels. Colours are fixed per series across every plot
of one experiment.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.process.pareto import pareto_front  # noqa: E402

RECALL_CLIP = (0.01, 0.9999)


def series_colors(series: list[str]) -> dict[str, tuple[float, ...]]:
    cmap = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(sorted(series))}


def _recall_axis(ax: plt.Axes, values: pd.Series, label: str) -> None:
    lo = float(np.clip(values.min(), *RECALL_CLIP)) if len(values) else 0.5
    if lo >= 0.5:
        ax.set_xscale("logit", nonpositive="clip")
        ax.set_xlim(max(RECALL_CLIP[0], min(lo, 0.9) * 0.98), RECALL_CLIP[1])
        ax.set_xlabel(f"{label} (logit scale; 1.0 drawn at 0.9999)")
    else:
        ax.set_xlim(0, 1.01)
        ax.set_xlabel(label)


def _finish(fig: plt.Figure, ax: plt.Axes, title: str, path: Path, svg: bool) -> list[Path]:
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    written = [path]
    if svg:
        fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
        written.append(path.with_suffix(".svg"))
    plt.close(fig)
    return written


def tradeoff_plot(
    df: pd.DataFrame, y: str, ylabel: str, title: str, path: Path, colors: dict, *,
    pareto: bool, svg: bool, score_label: str, log_y: bool = True,
) -> list[Path]:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for series, group in df.groupby("series"):
        group = group.dropna(subset=["score", y])
        if group.empty:
            continue
        pts = group.assign(score=group["score"].clip(*RECALL_CLIP))
        if pareto and y == "qps":
            front = pareto_front(pts, "score", y)
            ax.plot(front["score"], front[y], "-o", color=colors[series], label=series, ms=4)
            ax.scatter(pts["score"], pts[y], color=colors[series], alpha=0.15, s=10)
        else:
            ax.scatter(pts["score"], pts[y], color=colors[series], label=series, s=18)
    _recall_axis(ax, df["score"].dropna(), score_label)
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, title, path, svg)


def ann_plots(df: pd.DataFrame, out_dir: Path, title: str, *, svg: bool = False,
              all_points: bool = False) -> list[Path]:
    """The core trade-off plots, one set per k."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return []
    colors = series_colors(list(df["series"].unique()))
    score_label = "hit-rate recall" if "hit_rate" in ok and ok["hit_rate"].notna().any() \
        else "recall (tie-aware)"
    written: list[Path] = []
    for k, group in ok.groupby("k"):
        suffix = f"k{k}"
        written += tradeoff_plot(
            group, "qps", "queries per second (log)", f"{title}: {score_label}@{k} vs QPS",
            out_dir / f"recall_qps_{suffix}.png", colors, pareto=not all_points, svg=svg,
            score_label=f"{score_label}@{k}",
        )
        best = group.sort_values("score").groupby(["series", "build"]).tail(1)
        if "build_time_s" in best:
            written += tradeoff_plot(
                best, "build_time_s", "build time (s, log)",
                f"{title}: build time vs best {score_label}@{k} per build",
                out_dir / f"build_time_{suffix}.png", colors, pareto=False, svg=svg,
                score_label=f"best {score_label}@{k}",
            )
        mem_col = "index_mb"
        best = best.assign(**{mem_col: _index_mb(best)})
        if best[mem_col].notna().any():
            written += tradeoff_plot(
                best, mem_col, "index memory (MB, log; USS growth of the worker)",
                f"{title}: index memory vs best {score_label}@{k} per build",
                out_dir / f"index_memory_{suffix}.png", colors, pareto=False, svg=svg,
                score_label=f"best {score_label}@{k}",
            )
    return written


def _index_mb(df: pd.DataFrame) -> pd.Series:
    uss = df["index_uss_bytes"] if "index_uss_bytes" in df else pd.Series(np.nan, index=df.index)
    own = df["index_bytes"] if "index_bytes" in df else pd.Series(np.nan, index=df.index)
    chosen = uss.where(uss > 0, own)
    return chosen.astype(float) / 1e6
