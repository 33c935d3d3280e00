"""results.json -> a flat pandas DataFrame, the one shape every plot and table reads.

Plots and tables never walk the nested runs themselves: one flattening here means
a renamed field is fixed in one place, and every figure agrees on what a
"configuration", a "series" and the "score" are.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from bench.results.record import index_mb, param_text, score, score_field


def series_name(run: dict[str, Any]) -> str:
    return f"{run['extractor']} / {run['label']}" if run.get("extractor") else str(run["label"])


def runs_frame(results: dict[str, Any]) -> pd.DataFrame:
    """One row per run; columns build.<p>, query.<p>, extra.<m>, series, score, index_mb.

    ``score`` is what the experiment is judged by: the identity hit rate when the
    run has one, the tie-aware k-NN recall otherwise. ``build_label`` and
    ``config`` are human-readable and unique per build / per run within a series.
    """
    rows = []
    sets = (results.get("dataset") or {}).get("feature_sets") or {}
    for r in results.get("runs", []):
        row = {k: v for k, v in r.items() if not isinstance(v, dict | list)}
        row.update(_worker_peak(r, sets))
        build, query = r.get("build_params") or {}, r.get("query_params") or {}
        row["build"] = json.dumps(build, sort_keys=True)
        row["query"] = json.dumps(query, sort_keys=True)
        for name, value in build.items():
            row[f"build.{name}"] = value
        for name, value in query.items():
            row[f"query.{name}"] = value
        for name, value in (r.get("extra") or {}).items():
            if not isinstance(value, dict | list):
                row[f"extra.{name}"] = value
        ci = r.get("qps_ci")  # the 95 % CI of the median QPS, when the run was sampled
        row["qps_low"], row["qps_high"] = (ci if isinstance(ci, list) and len(ci) == 2
                                           else (np.nan, np.nan))
        row["series"] = series_name(r)
        row["score"] = score(r)
        row["score_field"] = score_field(r)
        row["index_mb"] = index_mb(r)
        shown = param_text(build) or "default build"
        row["build_label"] = f"{row['series']} [{shown}]"
        row["config"] = " ".join(
            part for part in (row["series"], param_text(build), param_text(query)) if part
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("status", "qps", "recall", "build_time_s", "k", "extractor", "stable"):
        if col not in df:
            df[col] = np.nan
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    df["index_mb"] = pd.to_numeric(df["index_mb"], errors="coerce")
    return _label_swept_axes(df)


#: run fields an experiment may sweep (metric list, database sizes, thread list)
SWEPT_AXES = ("metric", "n_database", "threads")


def swept_axes(df: pd.DataFrame) -> list[str]:
    """The axes that take more than one value in these runs."""
    return [c for c in SWEPT_AXES if c in df and df[c].nunique(dropna=True) > 1]


def axes_text(row: pd.Series, axes: list[str]) -> str:
    parts = {"metric": lambda v: str(v), "n_database": lambda v: f"n={int(v):,}",
             "threads": lambda v: f"{int(v)} thr"}
    return ", ".join(parts[a](row[a]) for a in axes if pd.notna(row.get(a)))


def _label_swept_axes(df: pd.DataFrame) -> pd.DataFrame:
    """Series names carry the swept axes, so the figures that draw one line per series
    never join two database sizes, metrics or thread counts into one curve.
    ``series_base`` keeps the name without them (the size and thread plots' lines)."""
    df["series_base"] = df["series"]
    axes = swept_axes(df)
    if not axes:
        return df
    text = df.apply(lambda row: axes_text(row, axes), axis=1)
    for col in ("series", "build_label", "config"):
        df[col] = df[col] + " [" + text + "]"
    return df


def _worker_peak(run: dict[str, Any], sets: dict[str, Any]) -> dict[str, float]:
    """The worker's peak anonymous memory (MB) and that peak against the data size."""
    peak = run.get("peak_anon_bytes")
    if not isinstance(peak, int | float) or not peak:
        return {}
    data = (sets.get(run.get("extractor") or "vectors") or {}).get("data_bytes")
    out = {"peak_mb": peak / 1e6}
    if isinstance(data, int | float) and data:
        out["peak_x_data"] = peak / data
    return out


def score_label(df: pd.DataFrame) -> str:
    if "score_field" in df and (df["score_field"] == "hit_rate").any():
        return "hit-rate recall"
    return "recall (tie-aware)"


def ok_runs(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["status"] == "ok") & df["score"].notna()]
