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

#: parameters that name the index family rather than tune it; long and already in the label
HIDDEN_PARAMS = ("factory", "index_binary_factory")


def param_text(params: dict[str, Any] | None) -> str:
    """`IVF256,Flat nprobe=4, M=16`: the compact form used in legends, tables and labels.

    A factory string is its own name (the key adds nothing but width); it comes first.
    """
    params = params or {}
    named = [str(params[k]) for k in HIDDEN_PARAMS if k in params]
    rest = ", ".join(f"{k}={v}" for k, v in params.items() if k not in HIDDEN_PARAMS)
    return " ".join(part for part in (*named, rest) if part)


def series_name(run: dict[str, Any]) -> str:
    return f"{run['extractor']} / {run['label']}" if run.get("extractor") else str(run["label"])


def runs_frame(results: dict[str, Any]) -> pd.DataFrame:
    """One row per run; columns build.<p>, query.<p>, extra.<m>, series, score, index_mb.

    ``score`` is what the experiment is judged by: the identity hit rate when the
    run has one, the tie-aware k-NN recall otherwise. ``build_label`` and
    ``config`` are human-readable and unique per build / per run within a series.
    """
    rows = []
    for r in results.get("runs", []):
        row = {k: v for k, v in r.items() if not isinstance(v, dict | list)}
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
        row["series"] = series_name(r)
        shown = param_text(build) or "default build"
        row["build_label"] = f"{row['series']} [{shown}]"
        row["config"] = " ".join(
            part for part in (row["series"], param_text(build), param_text(query)) if part
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("status", "qps", "recall", "build_time_s", "k", "extractor"):
        if col not in df:
            df[col] = np.nan
    if "hit_rate" in df:
        df["score"] = df["hit_rate"].fillna(df["recall"])
    else:
        df["score"] = df["recall"]
    df["index_mb"] = index_mb(df)
    return df


def index_mb(df: pd.DataFrame) -> pd.Series:
    """Index size in MB: the worker's USS growth, else the backend's own estimate.

    USS growth is what the index really cost this process; a backend estimate is
    used only where the measurement is missing or non-positive (allocator noise
    on tiny indexes).
    """
    nan = pd.Series(np.nan, index=df.index)
    uss = pd.to_numeric(df["index_uss_bytes"], errors="coerce") if "index_uss_bytes" in df else nan
    own = pd.to_numeric(df["index_bytes"], errors="coerce") if "index_bytes" in df else nan
    return uss.where(uss > 0, own).astype(float) / 1e6


def score_label(df: pd.DataFrame) -> str:
    if "hit_rate" in df and df["hit_rate"].notna().any():
        return "hit-rate recall"
    return "recall (tie-aware)"


def ok_runs(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["status"] == "ok") & df["score"].notna()]
