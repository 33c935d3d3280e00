"""Parameter sweeps and per-configuration build cost.

``recall vs <query parameter>`` answers "how far must I turn nprobe / ef /
search_k": one line per build, score on top and throughput below on a shared x
axis, because the point of turning the knob is the trade between the two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.process.style import legend_outside, plain_log, plt, save, slug

MARKERS = "osD^vP*Xh<>"
LINESTYLES = ("-", "--", "-.", ":")


def _numeric(values: pd.Series) -> pd.Series | None:
    out = pd.to_numeric(values, errors="coerce")
    return out if out.notna().all() else None


def query_params(df: pd.DataFrame) -> list[str]:
    """Numeric query parameters that take at least two values within one build."""
    names = []
    for col in sorted(c for c in df.columns if c.startswith("query.")):
        sub = df.dropna(subset=[col])
        if sub.empty or _numeric(sub[col]) is None:
            continue
        if sub.groupby(["series", "build"])[col].nunique().max() >= 2:
            names.append(col)
    return names


def param_sweep(df: pd.DataFrame, col: str, k: int, path: Path, colors: dict, *, title: str,
                label: str, svg: bool) -> list[Path]:
    name = col.removeprefix("query.")
    sub = df.dropna(subset=[col, "score"]).copy()
    sub[col] = pd.to_numeric(sub[col])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    styles: dict[str, int] = {}
    for (series, build_label), group in sub.groupby(["series", "build_label"], sort=True):
        group = group.sort_values(col)
        if group[col].nunique() < 2:
            continue
        i = styles.setdefault(series, 0)
        styles[series] += 1
        kw = {"color": colors[series], "marker": MARKERS[i % len(MARKERS)], "ms": 4.5,
              "ls": LINESTYLES[i % len(LINESTYLES)]}
        top.plot(group[col], group["score"], label=build_label, **kw)
        if group["qps"].notna().any():
            bottom.plot(group[col], group["qps"], **kw)
    values = np.sort(sub[col].unique())
    if values.min() > 0 and values.max() / values.min() >= 8:
        bottom.set_xscale("log", base=2 if _powers_of_two(values) else 10)
        plain_log(bottom.xaxis)
    if len(values) <= 12:
        bottom.set_xticks(values, [f"{v:g}" for v in values])
        bottom.minorticks_off()
    bottom.set_xlabel(f"query parameter {name}")
    top.set_ylabel(f"{label}@{k}")
    lo = float(sub["score"].min())
    top.set_ylim(max(0.0, lo - 0.05) if lo > 0.3 else 0.0, 1.01)
    bottom.set_ylabel("queries per second (log)")
    bottom.set_yscale("log")
    plain_log(bottom.yaxis)
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.25)
    top.set_title(f"{title}: {label}@{k} and throughput vs {name}, one line per build")
    legend_outside(top, "build")
    return save(fig, path, svg=svg)


def _powers_of_two(values: np.ndarray) -> bool:
    return bool(np.all(np.log2(values) == np.round(np.log2(values))))


def sweep_plots(df: pd.DataFrame, out_dir: Path, colors: dict, *, title: str, label: str,
                svg: bool = False) -> list[Path]:
    written: list[Path] = []
    for col in query_params(df):
        for k, group in df.groupby("k", sort=True):
            k = int(k)
            path = out_dir / f"recall_vs_{slug(col.removeprefix('query.'))}_k{k}.png"
            if group.dropna(subset=[col]).empty:
                continue
            written += param_sweep(group, col, k, path, colors, title=title, label=label,
                                   svg=svg)
    return written


def build_cost(df: pd.DataFrame, path: Path, colors: dict, *, title: str,
               svg: bool = False) -> list[Path]:
    """Horizontal bars, one row per build: build time (left) and index memory (right)."""
    cols = [c for c in ("build_time_s", "index_mb") if c in df]
    builds = df.dropna(subset=["build_time_s"]).drop_duplicates(["series", "build"])
    if builds.empty:
        return []
    builds = builds.sort_values(["series", "build_label"], ascending=False)
    n = len(builds)
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.32 * n), sharey=True)
    y = np.arange(n)
    titles = {"build_time_s": "build time (s)", "index_mb": "index memory (MB)"}
    for ax, col in zip(axes, ("build_time_s", "index_mb"), strict=True):
        values = builds[col].astype(float) if col in cols else pd.Series(np.nan, index=builds.index)
        ax.barh(y, values.fillna(0), color=[colors[s] for s in builds["series"]], height=0.7)
        positive = values[values > 0]
        if len(positive) and positive.max() / positive.min() >= 50:
            ax.set_xscale("log")
            plain_log(ax.xaxis)
            titles[col] += ", log scale"
        for yi, v in zip(y, values, strict=True):
            text = "n/a" if not np.isfinite(v) else f"{v:.3g}"
            ax.annotate(text, (v if np.isfinite(v) and v > 0 else 0, yi), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize="x-small")
        ax.set_xlabel(titles[col])
        ax.margins(x=0.15)
        ax.grid(True, axis="x", which="both", alpha=0.25)
    axes[0].set_yticks(y, list(builds["build_label"]), fontsize="small")
    axes[0].set_ylim(-0.6, n - 0.4)
    fig.suptitle(f"{title}: build time and index memory per build", fontweight="bold",
                 fontsize="medium")
    fig.tight_layout()
    return save(fig, path, svg=svg)
