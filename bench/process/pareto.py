"""Pareto fronts of (recall, QPS): the runs no other run beats on both at once."""

from __future__ import annotations

import pandas as pd


def pareto_front(df: pd.DataFrame, x: str = "recall", y: str = "qps") -> pd.DataFrame:
    """Rows not dominated by any other row (higher x and higher y are better)."""
    ordered = df.sort_values([x, y], ascending=[False, False])
    best_y = float("-inf")
    keep = []
    for idx, value in zip(ordered.index, ordered[y], strict=True):
        if value > best_y:
            keep.append(idx)
            best_y = value
    return df.loc[keep].sort_values(x)
