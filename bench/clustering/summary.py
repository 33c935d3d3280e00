"""The run table `bench run` prints for a clustering experiment.

The search table's columns (recall, QPS, index size) say nothing here; this one
shows what a clustering run is judged by, and which distance path it took.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

COLUMNS = ("extractor", "run", "params", "clusters", "H", "C", "V", "ARI", "NMI", "noise",
           "path", "status")


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def clustering_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="clustering runs (H homogeneity, C completeness, V V-measure)")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("extractor", "run", "params", "path",
                                                        "status") else "right")
    for r in runs:
        if r.get("mode") != "clustering":
            continue
        ok = r["status"] == "ok"

        def num(key: str, r: dict[str, Any] = r, ok: bool = ok) -> str:
            value = r.get(key)
            return f"{value:.3f}" if ok and value is not None else ""

        table.add_row(
            r.get("extractor") or "", r["label"], _params(r.get("query_params") or {}),
            str(r.get("n_clusters", "")) if ok else "", num("homogeneity"),
            num("completeness"), num("v_measure"), num("adjusted_rand"), num("nmi"),
            f"{r['noise_fraction']:.0%}" if ok else "", r.get("distance_path") or "",
            r["status"] if ok else f"[red]{r['status']}[/] {r.get('error') or ''}",
        )
    return table
