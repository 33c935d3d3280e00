"""Precision-recall curves of label experiments (runs carrying ``pr_curve``).

A run's ``pr_curve`` is ``{"precision": [...], "recall": [...]}`` averaged over
queries at every rank cut-off, as the label metrics write it. With many runs
only the best run of each series is drawn, so the lines stay tellable apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.process.style import legend_outside, plt, save

MAX_CURVES = 10
AP_FIELDS = ("map", "mAP", "average_precision", "ap")


def _curve(run: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    pr = run.get("pr_curve")
    if not isinstance(pr, dict):
        return None
    try:
        precision = np.asarray(pr.get("precision", []), dtype=float)
        recall = np.asarray(pr.get("recall", []), dtype=float)
    except (TypeError, ValueError):
        return None
    if precision.ndim != 1 or precision.shape != recall.shape or len(precision) < 2:
        return None
    return recall, precision


def pr_curves(df: pd.DataFrame, raw: dict[str, dict[str, Any]], path: Path, colors: dict, *,
              title: str, svg: bool) -> list[Path]:
    runs = df[df["id"].map(lambda i: _curve(raw[i]) is not None)]
    if runs.empty:
        return []
    note = ""
    if len(runs) > MAX_CURVES:
        runs = runs.sort_values(["score", "k"]).groupby("series").tail(1)
        note = " (best run per series)"
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    styles: dict[str, int] = {}
    for _, run in runs.sort_values(["series", "config", "k"]).iterrows():
        curve = _curve(raw[run["id"]])
        assert curve is not None
        recall, precision = curve
        i = styles.setdefault(run["series"], 0)
        styles[run["series"]] += 1
        ap = next((raw[run["id"]][f] for f in AP_FIELDS
                   if isinstance(raw[run["id"]].get(f), int | float)), None)
        label = f"{run['config']} k={int(run['k'])}" + (f"  (mAP {ap:.3f})" if ap is not None
                                                          else "")
        order = np.argsort(recall, kind="stable")
        ax.plot(recall[order], precision[order], color=colors[run["series"]],
                ls=("-", "--", "-.", ":")[i % 4], lw=1.6, label=label)
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (mean over queries)")
    ax.set_ylabel("precision (mean over queries)")
    ax.set_title(f"{title}: precision-recall curves{note}")
    ax.grid(True, alpha=0.25)
    legend_outside(ax, "run")
    return save(fig, path, svg=svg)
