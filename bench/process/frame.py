"""results.json -> a flat pandas DataFrame, the one shape every plot and table reads."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def runs_frame(results: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for r in results.get("runs", []):
        row = {k: v for k, v in r.items() if not isinstance(v, dict | list)}
        row["build"] = json.dumps(r.get("build_params", {}), sort_keys=True)
        row["query"] = json.dumps(r.get("query_params", {}), sort_keys=True)
        for name, value in (r.get("build_params") or {}).items():
            row[f"build.{name}"] = value
        for name, value in (r.get("query_params") or {}).items():
            row[f"query.{name}"] = value
        for name, value in (r.get("extra") or {}).items():
            row[f"extra.{name}"] = value
        row["series"] = f"{r['extractor']} / {r['label']}" if r.get("extractor") else r["label"]
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty and "hit_rate" in df:
        df["score"] = df["hit_rate"].fillna(df.get("recall"))
    elif not df.empty and "recall" in df:
        df["score"] = df["recall"]
    return df
