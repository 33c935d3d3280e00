"""Copy detection the way the field scores it, beside the hit rate (issue #17).

Identity runs carry pooled metrics (``uap``, ``recall@p90``, ``threshold@p90``, the
pooled PR curve, ``uap_by_family``; ``*_norm`` with score normalisation). This module
draws them and puts them in one table with the per-query hit rate, so the two views
read side by side: hit rate ignores queries without an original; µAP charges every
prediction of every query against one global threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.files import atomic_write_bytes
from bench.process.style import legend_outside, plt, save

MAX_CURVES = 10
VIEWS = (("", "raw similarity"), ("_norm", "normalised similarity"))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def pooled_runs(df: pd.DataFrame, raw: dict[str, dict[str, Any]]) -> pd.DataFrame:
    if df.empty or "id" not in df:
        return df.iloc[0:0]
    return df[df["id"].map(lambda i: _num(raw[i].get("uap")) is not None)]


def _views(runs: pd.DataFrame, raw: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s, t) for s, t in VIEWS
            if any(_num(raw[i].get(f"uap{s}")) is not None for i in runs["id"])]


def copy_detection_table(df: pd.DataFrame, raw: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per identity run: hit rate, accuracy@1, µAP, R@P90 (+ threshold), both views."""
    runs = pooled_runs(df, raw)
    rows = []
    for _, run in runs.sort_values(["series", "k", "config"]).iterrows():
        r = raw[run["id"]]
        row: dict[str, Any] = {"configuration": run["config"], "k": int(run["k"]),
                               "hit_rate@1": _num(r.get("hit_rate@1")),
                               "hit_rate@k": _num(r.get("hit_rate")),
                               "accuracy@1": _num(r.get("accuracy@1"))}
        for suffix, _ in VIEWS:
            row[f"uap{suffix}"] = _num(r.get(f"uap{suffix}"))
            row[f"recall@p90{suffix}"] = _num(r.get(f"recall@p90{suffix}"))
            row[f"threshold@p90{suffix}"] = _num(r.get(f"threshold@p90{suffix}"))
        row["positive_queries"] = r.get("positive_queries")
        row["negative_queries"] = r.get("negative_queries")
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all") if not table.empty else table


def write_table(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    if table.empty:
        return []
    path = out_dir / "tables" / "copy_detection.csv"
    atomic_write_bytes(path, table.to_csv(index=False).encode())
    return [path]


def report_rows(table: pd.DataFrame) -> dict[str, Any] | None:
    """Header and formatted cells for report.html (None: no identity runs)."""
    if table.empty:
        return None

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    return {"columns": list(table.columns),
            "rows": [[cell(v) for v in row] for row in table.itertuples(index=False)]}


def _chosen(runs: pd.DataFrame, raw: dict[str, dict[str, Any]]) -> tuple[pd.DataFrame, str]:
    """Runs at the largest k (most predictions per query); best µAP per series if many."""
    runs = runs[runs["k"] == runs["k"].max()].copy()
    runs["_uap"] = runs["id"].map(lambda i: raw[i]["uap"])
    note = ""
    if len(runs) > MAX_CURVES:
        runs = runs.sort_values("_uap").groupby("series").tail(1)
        note = " (best µAP per series)"
    return runs.sort_values(["series", "config"]), note


def pooled_pr_figure(df: pd.DataFrame, raw: dict[str, dict[str, Any]], path: Path,
                     colors: dict, *, title: str, svg: bool) -> list[Path]:
    """Pooled precision-recall curves, µAP in the legend, recall at precision 0.9 marked."""
    runs = pooled_runs(df, raw)
    if runs.empty:
        return []
    runs, note = _chosen(runs, raw)
    views = _views(runs, raw)
    fig, axes = plt.subplots(len(views), 1, figsize=(9.0, 5.0 * len(views)), squeeze=False)
    for ax, (suffix, name) in zip(axes[:, 0], views, strict=True):
        styles: dict[str, int] = {}
        for _, run in runs.iterrows():
            r = raw[run["id"]]
            curve = r.get(f"pooled_pr{suffix}") or {}
            recall = np.asarray(curve.get("recall", []), dtype=float)
            precision = np.asarray(curve.get("precision", []), dtype=float)
            if recall.size < 1 or _num(r.get(f"uap{suffix}")) is None:
                continue
            i = styles.setdefault(run["series"], 0)
            styles[run["series"]] += 1
            rp = _num(r.get(f"recall@p90{suffix}"))
            label = (f"{run['config']} k={int(run['k'])}  (µAP {r[f'uap{suffix}']:.3f}, "
                     f"R@P90 {rp or 0:.3f})")
            color = colors[run["series"]]
            ax.plot(recall, precision, color=color, ls=("-", "--", "-.", ":")[i % 4], lw=1.6,
                    label=label, drawstyle="steps-post")
            if rp:
                ax.plot([rp], [0.9], marker="o", ms=6, color=color, mec="black", mew=0.6)
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall (pooled over all true pairs)")
        ax.set_ylabel("precision (pooled over all predictions)")
        ax.set_title(f"{name}; dots: recall at precision 0.9")
        ax.grid(True, alpha=0.25)
        legend_outside(ax, "run")
    fig.suptitle(f"{title}: pooled precision-recall{note}")
    return save(fig, path, svg=svg)


def uap_by_family_figure(df: pd.DataFrame, raw: dict[str, dict[str, Any]], path: Path,
                         colors: dict, *, title: str, svg: bool) -> list[Path]:
    """µAP per attack family (queries of the family and their predictions pooled)."""
    runs = pooled_runs(df, raw)
    runs = runs[runs["id"].map(lambda i: isinstance(raw[i].get("uap_by_family"), dict))]
    if runs.empty:
        return []
    runs, note = _chosen(runs, raw)
    views = _views(runs, raw)
    families = sorted({f for i in runs["id"] for f in raw[i]["uap_by_family"]})
    fig, axes = plt.subplots(len(views), 1, figsize=(max(8.0, 1.2 * len(families) + 3),
                                                     4.2 * len(views)), squeeze=False)
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(families))
    for ax, (suffix, name) in zip(axes[:, 0], views, strict=True):
        for j, (_, run) in enumerate(runs.iterrows()):
            by = raw[run["id"]].get(f"uap_by_family{suffix}") or {}
            values = [by.get(f) if isinstance(by.get(f), int | float) else np.nan
                      for f in families]
            ax.bar(x - 0.4 + width * (j + 0.5), values, width, color=colors[run["series"]],
                   hatch=["", "//", "..", "xx"][j % 4], edgecolor="white",
                   label=f"{run['config']} k={int(run['k'])}")
        ax.set_xticks(x, families, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("µAP")
        ax.set_title(name)
        ax.grid(True, axis="y", alpha=0.25)
        legend_outside(ax, "configuration")
    fig.subplots_adjust(hspace=0.5)  # room for the rotated family names above a panel
    fig.suptitle(f"{title}: µAP by attack family{note}")
    return save(fig, path, svg=svg)
