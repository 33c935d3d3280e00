"""Figures of a clustering experiment, from its results folder only.

- homogeneity vs completeness across the cuts of each series, over V-measure contours;
- the five label metrics against the number of clusters found;
- violins of cluster sizes and diameters: the best run of each series (by V-measure)
  beside the identities themselves, the partition every run is aiming at;
- a dendrogram per linkage with the cuts drawn in;
- image grids per cluster (bench.clustering.grids);
- clustering_runs.csv, every run as one row.

Entry point: ``clustering_plots(results, out_dir, svg)`` for ``bench process``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.files import atomic_write_bytes
from bench.process.style import legend_outside, plain_log, plt, save, series_colors, slug

SCORES = (("homogeneity", "homogeneity"), ("completeness", "completeness"),
          ("v_measure", "V-measure"), ("adjusted_rand", "adjusted Rand index"), ("nmi", "NMI"))
DENDROGRAM_LEAVES = 40
MARKERS = ("o", "s", "^", "D", "v")
LINES = ("-", "--", ":", "-.")


def _folder(results: dict[str, Any]) -> Path:
    return Path(results["_path"]).parent


def _read_json(folder: Path, rel: str) -> Any:
    return json.loads((folder / rel).read_text())


def runs_table(results: dict[str, Any]) -> pd.DataFrame:
    """Finished clustering runs, one row each, with a ``series`` and a sort ``order``."""
    rows = []
    for r in results.get("runs", []):
        if r.get("mode") != "clustering" or r.get("status") != "ok":
            continue
        row = {k: v for k, v in r.items() if not isinstance(v, dict | list)}
        q = r.get("query_params") or {}
        label = str(r["label"]) if "[" in str(r["label"]) else f"{r['label']} ({r['metric']})"
        if r["algorithm"] == "dbscan":
            label += f" min_samples={q.get('min_samples')}"
            row["order"] = q.get("eps")
            row["param"] = f"eps={q.get('eps'):g} min_samples={q.get('min_samples')}"
            row["point"] = f"eps={q.get('eps'):g}"
        else:
            row["order"] = r.get("n_clusters_requested")
            row["param"] = row["point"] = f"k={r.get('n_clusters_requested')}"
        row["series"] = f"{r['extractor']} / {label}"
        row["method"] = label  # the series without its feature set: one colour across panels
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["series", "order"]) if not df.empty else df


def clustering_plots(results: dict[str, Any], out_dir: Path, svg: bool) -> list[Path]:
    """Write every clustering figure and the runs CSV under out_dir; returns the paths."""
    from bench.clustering.grids import cluster_grids

    df = runs_table(results)
    written: list[Path] = []
    if df.empty:
        return written
    csv = out_dir / "clustering_runs.csv"
    atomic_write_bytes(csv, df.drop(columns=["order"]).to_csv(index=False).encode())
    written.append(csv)
    colors = series_colors(list(df["method"].unique()))
    title = str(results.get("name") or "")
    written += homogeneity_completeness(df, out_dir / "homogeneity_completeness.png", colors,
                                        title=title, svg=svg)
    written += metrics_vs_clusters(df, out_dir / "metrics_vs_clusters.png", colors,
                                   results, title=title, svg=svg)
    written += metrics_vs_epoch(df, out_dir / "clustering_vs_epoch.png", colors, title=title,
                                svg=svg)
    written += distributions(df, results, out_dir, title=title, svg=svg)
    written += dendrograms(results, df, out_dir / "dendrograms", svg=svg)
    written += cluster_grids(results, df, out_dir / "grids")
    return written


def metrics_vs_epoch(df: pd.DataFrame, path: Path, colors: dict[str, Any], *, title: str,
                     svg: bool) -> list[Path]:
    """Fine-tuning sweeps (runs with an ``epoch``): the best V-measure and adjusted Rand
    index of each method (over its parameter) on every checkpoint's features."""
    if "epoch" not in df or df["epoch"].dropna().nunique() < 2:
        return []
    runs = df.dropna(subset=["epoch"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, metric, name in zip(axes, ("v_measure", "adjusted_rand"),
                                ("V-measure", "adjusted Rand index"), strict=True):
        for method, group in runs.groupby("method", sort=True):
            best = group.groupby("epoch")[metric].max().sort_index()
            ax.plot(best.index, best.values, marker="o", ms=4, color=colors[method],
                    label=method)
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel(f"best {name}")
        ax.grid(True, alpha=0.25)
    fig.suptitle(f"{title}: clustering quality against fine-tuning epoch (best parameter "
                 "per method)", fontsize="medium")
    legend_outside(axes[1], "method")
    return save(fig, path, svg=svg)


def homogeneity_completeness(df: pd.DataFrame, path: Path, colors: dict[str, Any], *,
                             title: str, svg: bool) -> list[Path]:
    extractors = sorted(df["extractor"].unique())
    fig, axes = plt.subplots(1, len(extractors), figsize=(5.2 * len(extractors), 5.0),
                             squeeze=False, sharey=True)
    grid = np.linspace(0.005, 1.0, 200)
    hh, cc = np.meshgrid(grid, grid, indexing="ij")
    vv = 2 * hh * cc / (hh + cc)
    for ax, ext in zip(axes[0], extractors, strict=True):
        contours = ax.contour(cc, hh, vv, levels=[0.2, 0.4, 0.6, 0.8, 0.9], colors="0.8",
                              linewidths=0.8)
        ax.clabel(contours, fmt=lambda v: f"V={v:g}", fontsize="x-small")
        for method, group in df[df["extractor"] == ext].groupby("method", sort=True):
            ax.plot(group["completeness"], group["homogeneity"], "o-", ms=4, lw=1.2,
                    color=colors[method], label=method)
            last = group.iloc[-1]
            ax.annotate(last["point"], (last["completeness"], last["homogeneity"]),
                        fontsize="xx-small", xytext=(3, 2), textcoords="offset points",
                        color=colors[method])
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="completeness (an identity in one cluster)",
               title=f"{title}: {ext}")
        ax.set_aspect("equal")
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    axes[0][-1].legend(list(handles.values()), list(handles), loc="upper left",
                       bbox_to_anchor=(1.02, 1.0), frameon=False,
                       title="series (last point labelled)")
    axes[0][0].set_ylabel("homogeneity (a cluster holds one identity)")
    return save(fig, path, svg=svg)


def metrics_vs_clusters(df: pd.DataFrame, path: Path, colors: dict[str, Any],
                        results: dict[str, Any], *, title: str, svg: bool) -> list[Path]:
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    flat = axes.ravel()
    identities = sorted({int(v.get("n_identities", 0)) for v in
                         ((results.get("dataset") or {}).get("feature_sets") or {}).values()})
    extractors = sorted(df["extractor"].unique())
    styles = {ext: (MARKERS[i % len(MARKERS)], LINES[i % len(LINES)])
              for i, ext in enumerate(extractors)}
    for ax, (col, name) in zip(flat, SCORES, strict=False):
        for series, group in df.groupby("series", sort=True):
            g = group.sort_values("n_clusters")
            marker, line = styles[g["extractor"].iloc[0]]
            if g["algorithm"].iloc[0] == "dbscan":
                line = "none"  # an eps sweep is not ordered by the clusters it finds
            ax.plot(g["n_clusters"].clip(lower=1), g[col], marker=marker, ls=line, ms=3,
                    lw=1.1, color=colors[g["method"].iloc[0]], label=series)
        for n in identities:
            if n:
                ax.axvline(n, color="0.5", ls="--", lw=0.8)
        ax.set_xscale("log")
        plain_log(ax.xaxis)
        ax.set(ylim=(-0.02 if col != "adjusted_rand" else None, 1.02), ylabel=name,
               xlabel="clusters found (noise points are singletons)")
    legend_ax = flat[-1]
    legend_ax.axis("off")
    handles, labels = flat[0].get_legend_handles_labels()
    legend_ax.legend(handles, labels, loc="center", frameon=False, fontsize="x-small",
                     title="dashed: number of identities")
    fig.suptitle(f"{title}: agreement with the identities", fontweight="bold")
    fig.tight_layout()
    return save(fig, path, svg=svg)


def _best_runs(df: pd.DataFrame) -> pd.DataFrame:
    return df.loc[df.groupby("series")["v_measure"].idxmax()].sort_values("series")


def distributions(df: pd.DataFrame, results: dict[str, Any], out_dir: Path, *, title: str,
                  svg: bool) -> list[Path]:
    """Violins of cluster size and diameter per metric: identities first, then the best
    run of each series."""
    folder = _folder(results)
    refs = (results.get("clustering") or {}).get("identities") or {}
    best = _best_runs(df)
    written: list[Path] = []
    for column, what, name in (("size", "cluster size (items)", "cluster_sizes.png"),
                               ("diameter", "cluster diameter", "cluster_diameters.png")):
        metrics = sorted(best["metric"].unique())
        fig, axes = plt.subplots(1, len(metrics), squeeze=False,
                                 figsize=(6.5 * len(metrics), 0.45 * (len(best) + 4) + 1.5))
        for ax, metric in zip(axes[0], metrics, strict=True):
            entries: list[tuple[str, np.ndarray]] = []
            for ref in refs.values():
                if ref["metric"] == metric:
                    table = _read_json(folder, ref["clusters_file"])
                    entries.append((f"{ref['extractor']}: identities", _values(table, column)))
            for _, run in best[best["metric"] == metric].iterrows():
                table = _read_json(folder, run["clusters_file"])
                entries.append((f"{run['series']} {run['point']}", _values(table, column)))
            if column == "size":  # sizes span decades: the density is drawn over log10(size)
                entries = [(label, np.log10(v)) for label, v in entries]
            _violins(ax, entries)
            if column == "size":
                top = max((float(v.max()) for _, v in entries if len(v)), default=1.0)
                ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 1000, 10_000,
                                     100_000, 1_000_000) if np.log10(t) <= top + 0.1]
                ax.set_xticks(np.log10(ticks), [f"{t:,}" for t in ticks])
            quantile = best["diameter_quantile"].iloc[0] if column == "diameter" else None
            label = what if quantile is None else f"{what} (q{quantile:g} of intra-cluster " \
                f"distances, {metric}; clusters of 2+)"
            ax.set(xlabel=label, title=f"{metric}")
        fig.suptitle(f"{title}: {what}, the identities and the best run of each series "
                     "(by V-measure)", fontweight="bold")
        fig.tight_layout()
        written += save(fig, out_dir / name, svg=svg)
    return written


def _values(table: dict[str, Any], column: str) -> np.ndarray:
    cols = table["clusters"]
    values = np.asarray(cols[column], dtype=float)
    if column == "diameter":
        values = values[np.asarray(cols["size"]) >= 2]
    return values


def _violins(ax: Any, entries: list[tuple[str, np.ndarray]]) -> None:
    positions = np.arange(len(entries))[::-1]
    rng = np.random.default_rng(0)
    drawable = [(p, v) for p, (_, v) in zip(positions, entries, strict=True)
                if len(v) >= 2 and np.ptp(v) > 0]
    if drawable:
        parts = ax.violinplot([v for _, v in drawable], positions=[p for p, _ in drawable],
                              orientation="horizontal", showmedians=True, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.35)
    for p, (_, v) in zip(positions, entries, strict=True):
        if len(v):
            ax.scatter(v, p + rng.uniform(-0.15, 0.15, len(v)), s=5, color="0.25", alpha=0.6,
                       zorder=3)
    ax.set_yticks(positions, [f"{name} (n={len(v)})" for name, v in entries],
                  fontsize="x-small")


def dendrograms(results: dict[str, Any], df: pd.DataFrame, out_dir: Path, *,
                svg: bool) -> list[Path]:
    """One dendrogram per linkage tree, truncated to its last merges, with the cuts."""
    from scipy.cluster.hierarchy import dendrogram, to_tree

    folder = _folder(results)
    linkages = (results.get("clustering") or {}).get("linkages") or {}
    written: list[Path] = []
    identities_cache: dict[str, list[str]] = {}
    for info in linkages.values():
        z = np.load(folder / info["file"], allow_pickle=False)
        n = len(z) + 1
        ext = info["extractor"]
        if ext not in identities_cache:
            identities_cache[ext] = _identities(results, ext)
        idents = identities_cache[ext]
        nodes = to_tree(z, rd=True)[1]

        def leaf_label(node_id: int, nodes: Any = nodes, idents: list[str] = idents) -> str:
            members = nodes[node_id].pre_order()
            names, counts = np.unique([idents[m] for m in members] if idents else ["?"],
                                      return_counts=True)
            top = int(np.argmax(counts))
            short = str(names[top]).split(":", 1)[-1]
            return f"{short} {counts[top]}/{len(members)}"

        cuts = df[df["linkage_file"] == info["file"]] if "linkage_file" in df else df.iloc[:0]
        fig, ax = plt.subplots(figsize=(12, 5.5))
        dendrogram(z, truncate_mode="lastp", p=min(DENDROGRAM_LEAVES, n), ax=ax,
                   leaf_label_func=leaf_label, leaf_rotation=90, leaf_font_size=7,
                   color_threshold=0, above_threshold_color="0.3")
        for _, run in cuts.iterrows():
            height = run.get("cut_height")
            if height is not None and np.isfinite(height):
                ax.axhline(height, ls="--", lw=0.9, color="tab:red", alpha=0.7)
                ax.annotate(f"{run['n_clusters']} clusters", (ax.get_xlim()[1], height),
                            fontsize="x-small", color="tab:red", ha="right", va="bottom")
        ax.set(ylabel=f"merge distance ({info['metric']})",
               title=f"{results.get('name')}: {ext}, {info['linkage']} linkage "
                     f"({info['metric']}), last {min(DENDROGRAM_LEAVES, n)} merges; "
                     "leaves: majority identity, count/size")
        name = f"{slug(ext)}-{info['metric']}-{info['linkage']}.png"
        written += save(fig, out_dir / name, svg=svg)
    return written


def _identities(results: dict[str, Any], key: str) -> list[str]:
    desc = ((results.get("dataset") or {}).get("feature_sets") or {}).get(key) or {}
    if not desc.get("items_file"):
        return []
    items = _read_json(_folder(results), desc["items_file"])
    return [str(it.get("identity")) for it in items["database"]]
