"""Identity experiments: recall@1 by attack type x configuration, and by attack family.

Rows of the heatmap are configurations (long labels read best horizontally),
columns are attacks grouped by family, so "which attack breaks which index"
reads as a vertical stripe.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.files import atomic_write_bytes
from bench.process.style import legend_outside, plt, save

#: more rows than this and the heatmap keeps the best query setting of each build
MAX_ROWS = 24


def _natural(text: str) -> list[Any]:
    return [float(p) if p.replace(".", "", 1).isdigit() else p
            for p in re.split(r"(\d+(?:\.\d+)?)", text) if p]


def attack_order(attacks: set[str], query_items: list[dict[str, Any]] | None,
                 families: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Attacks grouped by family (``families``: the attack table's order, which the run
    stage saves in the items file; then first appearance), in natural order within a
    family (jpeg_10 < jpeg_50 < jpeg_90), and their families."""
    family: dict[str, str] = {}
    for item in query_items or []:
        attrs = item.get("attrs") or {}
        name = attrs.get("attack")
        if name is not None and str(name) not in family:
            family[str(name)] = str(attrs.get("family", "other"))
    known = {name: i for i, name in enumerate(families or [])}
    seen: dict[str, int] = {}
    for name in family.values():
        seen.setdefault(name, len(known) + len(seen))
    rank = {**seen, **{f: i for f, i in known.items() if f in seen}}

    def key(attack: str) -> tuple[int, list[Any]]:
        f = family.get(attack)
        return (rank[f] if f is not None else len(rank) + 1, _natural(attack))

    return sorted(attacks, key=key), family


def identity_k(df: pd.DataFrame) -> int | None:
    """k=1 when it was run (the study's recall@1), else the smallest k."""
    ks = sorted(int(k) for k in df["k"].dropna().unique())
    return ks[0] if ks else None


def attack_table(df: pd.DataFrame, raw: dict[str, dict[str, Any]], field: str,
                 order: list[str] | None = None) -> pd.DataFrame:
    """configurations x groups of hit rates, from the runs' hit_rate_by_<field> dicts."""
    rows = {}
    for _, run in df.iterrows():
        values = raw[run["id"]].get(field)
        if isinstance(values, dict) and values:
            rows[run["config"]] = values
    table = pd.DataFrame.from_dict(rows, orient="index")
    if order:
        table = table[[c for c in order if c in table.columns]
                      + [c for c in table.columns if c not in order]]
    return table


def _choose_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    note = ""
    if len(runs) > MAX_ROWS:
        runs = runs.sort_values("score").groupby(["series", "build"]).tail(1)
        note = "best query setting per build"
    if len(runs) > MAX_ROWS:
        runs = runs.nlargest(MAX_ROWS, "score")
        note = f"the {MAX_ROWS} best configurations"
    return runs.sort_values(["series", "score"], ascending=[True, False]), note


def heatmap(table: pd.DataFrame, family: dict[str, str], k: int, path: Path, *, title: str,
            note: str, svg: bool) -> list[Path]:
    n_rows, n_cols = table.shape
    fig_w = min(30.0, 3.5 + 0.3 * n_cols)
    fig, ax = plt.subplots(figsize=(fig_w, 1.9 + 0.36 * n_rows))
    image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0,
                      vmax=1, interpolation="nearest")
    ax.set_xticks(np.arange(n_cols), list(table.columns), rotation=90, fontsize="x-small")
    ax.set_yticks(np.arange(n_rows), list(table.index), fontsize="small")
    values = table.to_numpy(dtype=float)
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, f"{round(v * 100):d}", ha="center", va="center", fontsize=6,
                    color="black" if v > 0.6 else "white")
    groups = [str(r).split(" / ")[0] if " / " in str(r) else "" for r in table.index]
    for r in range(1, n_rows):  # white rules between extractors
        if groups[r] != groups[r - 1]:
            ax.axhline(r - 0.5, color="white", lw=2)
    families = [family.get(str(c), "") for c in table.columns]
    start = 0
    for i in range(1, n_cols + 1):
        if i == n_cols or families[i] != families[start]:
            if i < n_cols:
                ax.axvline(i - 0.5, color="white", lw=2)
            if families[start]:
                ax.text((start + i - 1) / 2, -0.6, families[start], ha="center", va="bottom",
                        fontsize="x-small", fontweight="bold")
            start = i
    ax.set_xlabel("attack (grouped by family); cells: recall in %")
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    bar.set_label(f"hit-rate recall@{k}")
    suffix = f" ({note})" if note else ""
    ax.set_title(f"{title}: recall@{k} by attack and configuration{suffix}", pad=18)
    return save(fig, path, svg=svg)


def family_bars(table: pd.DataFrame, colors: dict, series_of: dict[str, str], k: int,
                path: Path, *, title: str, svg: bool) -> list[Path]:
    n_cfg, n_fam = table.shape
    fig, ax = plt.subplots(figsize=(min(22.0, max(7.0, 1.0 + n_fam * (0.3 + 0.12 * n_cfg))), 5.5))
    width = 0.8 / max(n_cfg, 1)
    x = np.arange(n_fam)
    hatches = ["", "//", "..", "xx", "\\\\", "oo"]
    seen: dict[str, int] = {}
    for i, (config, row) in enumerate(table.iterrows()):
        series = series_of[str(config)]
        j = seen.setdefault(series, 0)
        seen[series] += 1
        bars = ax.bar(x - 0.4 + width * (i + 0.5), row.to_numpy(dtype=float), width,
                      color=colors[series], hatch=hatches[j % len(hatches)], edgecolor="white",
                      label=str(config))
        if n_cfg * n_fam <= 60:  # a 0 bar is invisible without its number
            ax.bar_label(bars, labels=[f"{v * 100:.0f}" if np.isfinite(v) else "n/a"
                                       for v in row.to_numpy(dtype=float)],
                         fontsize="x-small", padding=2)
    ax.set_xticks(x, list(table.columns), rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"hit-rate recall@{k} (bar labels in %)")
    ax.set_xlabel("attack family")
    ax.set_title(f"{title}: recall@{k} by attack family (best query setting per build)")
    ax.grid(True, axis="y", alpha=0.25)
    legend_outside(ax, "configuration")
    return save(fig, path, svg=svg)


def identity_outputs(df: pd.DataFrame, raw: dict[str, dict[str, Any]],
                     query_items: list[dict[str, Any]] | None, out_dir: Path, colors: dict, *,
                     title: str, svg: bool, families: list[str] | None = None) -> list[Path]:
    """Heatmap, family bars and their CSV tables, when runs carry per-attack hit rates."""
    has = df["id"].map(lambda i: isinstance(raw[i].get("hit_rate_by_attack"), dict))
    runs = df[has]
    k = identity_k(runs) if not runs.empty else None
    if k is None:
        return []
    runs = runs[runs["k"] == k]
    written: list[Path] = []
    attacks = {a for i in runs["id"] for a in raw[i]["hit_rate_by_attack"]}
    order, family = attack_order(attacks, query_items, families)
    full = attack_table(runs, raw, "hit_rate_by_attack", order)
    csv = out_dir / "tables" / f"hit_rate_by_attack_k{k}.csv"
    atomic_write_bytes(csv, full.to_csv(index_label="configuration").encode())
    written.append(csv)
    chosen, note = _choose_rows(runs)
    written += heatmap(full.loc[list(chosen["config"])], family, k,
                       out_dir / f"attack_heatmap_k{k}.png", title=title, note=note, svg=svg)
    fam_runs = runs.sort_values("score").groupby(["series", "build"]).tail(1)
    fam_runs = fam_runs.nlargest(12, "score").sort_values(["series", "config"])
    families = attack_table(fam_runs, raw, "hit_rate_by_family",
                            list(dict.fromkeys(family[a] for a in order if a in family)))
    if not families.empty:
        fam_csv = out_dir / "tables" / f"hit_rate_by_family_k{k}.csv"
        all_fam = attack_table(runs, raw, "hit_rate_by_family", list(families.columns))
        atomic_write_bytes(fam_csv, all_fam.to_csv(index_label="configuration").encode())
        written.append(fam_csv)
        series_of = dict(zip(runs["config"], runs["series"], strict=True))
        written += family_bars(families, colors, series_of, k,
                               out_dir / f"family_bars_k{k}.png", title=title, svg=svg)
    return written
