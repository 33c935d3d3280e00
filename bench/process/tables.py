"""The decision table: per series the fastest run reaching recall 0.90 / 0.95 / 0.99.

The build time and memory are those of the build that run belongs to, so a
reader sees what the winning throughput costs. A series that never reaches a
level gets an empty cell rather than its best-effort point, which would compare
unlike with like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.files import atomic_write_bytes
from bench.process.plots import THRESHOLDS
from bench.results.record import param_text

COLUMNS = ["k", "series", "min_score", "qps", "qps_low", "qps_high", "stable", "score",
           "build_time_s", "index_mb", "build_params", "query_params", "run_id"]


def best_qps(df: pd.DataFrame, raw: dict[str, dict[str, Any]],
             thresholds: tuple[float, ...] = THRESHOLDS) -> pd.DataFrame:
    rows = []
    for (k, series), group in df.groupby(["k", "series"], sort=True):
        for t in thresholds:
            ok = group[(group["score"] >= t) & group["qps"].notna()]
            row: dict[str, Any] = {"k": int(k), "series": series, "min_score": t}
            if not ok.empty:
                best = ok.loc[ok["qps"].idxmax()]
                run = raw[best["id"]]
                row.update(qps=float(best["qps"]), score=float(best["score"]),
                           qps_low=_float(best.get("qps_low")),
                           qps_high=_float(best.get("qps_high")), stable=run.get("stable"),
                           build_time_s=_float(best.get("build_time_s")),
                           index_mb=_float(best.get("index_mb")),
                           build_params=param_text(run.get("build_params")),
                           query_params=param_text(run.get("query_params")),
                           run_id=best["id"])
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def write_best_qps(table: pd.DataFrame, out_dir: Path) -> Path:
    path = out_dir / "tables" / "best_qps.csv"
    atomic_write_bytes(path, table.to_csv(index=False, float_format="%.6g").encode())
    return path


def _fmt(value: float, spec: str) -> str:
    return "" if value is None or not np.isfinite(value) else format(value, spec)


def report_view(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per k: rows of series with one cell per threshold, formatted for the HTML report."""
    views = []
    for k, group in table.groupby("k", sort=True):
        rows = []
        for series, g in group.groupby("series", sort=True):
            cells = []
            for _, r in g.sort_values("min_score").iterrows():
                if pd.isna(r["qps"]):
                    cells.append(None)
                    continue
                ci = (f"{_fmt(r['qps_low'], ',.0f')}-{_fmt(r['qps_high'], ',.0f')}"
                      if np.isfinite(_float(r.get("qps_low"))) else "")
                cells.append({
                    "qps": _fmt(r["qps"], ",.0f") + ("" if r.get("stable") is not False
                                                     else " (unstable)"),
                    "qps_ci": ci, "score": _fmt(r["score"], ".4f"),
                    "build_s": _fmt(r["build_time_s"], ".3g"), "mb": _fmt(r["index_mb"], ".3g"),
                    "params": ", ".join(p for p in (r["build_params"], r["query_params"]) if p),
                })
            rows.append({"series": series, "cells": cells})
        views.append({"k": int(k), "thresholds": sorted(group["min_score"].unique()),
                      "rows": rows})
    return views
