"""Drive a clustering experiment: feature sets -> distances -> clusterings -> results.json.

Every item of a feature set is clustered, database and queries together, since an
original and its attacks share an identity: the question is whether each identity
comes out as one tight group. Distances are computed once per (feature set,
metric) and shared by every run under that metric; the linkage tree once per
linkage method and shared by every cut. Results are saved after every run, and
a re-run skips the runs it finds (unless the clustering options changed).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import numpy as np
from rich.console import Console

from bench.clustering import algorithms as algo
from bench.clustering.distances import (
    BudgetExceeded,
    Space,
    condensed_bytes,
    dense_path_bytes,
    graph_from_condensed,
    mib,
)
from bench.clustering.metrics import cluster_table, encode, label_scores, table_summary
from bench.config.clustering import ClusteringOptions, PlannedRun, parse_clustering, plan_runs
from bench.config.experiment import LoadedExperiment
from bench.core.errors import BenchError
from bench.core.files import atomic_save_npy, atomic_write_json
from bench.core.fingerprint import fingerprint_obj
from bench.features.prepare import FeatureSet
from bench.results import ResultsFile, now_iso, run_key
from bench.run.measure import environment


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _seconds(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e9


class _ItemsView:
    """The clustered rows of one feature set: features, items, identities."""

    def __init__(self, loaded: LoadedExperiment, fs: FeatureSet, drop_singletons: bool) -> None:
        self.key = fs.extractor or "vectors"
        self.epoch = fs.description.get("epoch")  # a fine-tuning checkpoint's features
        if fs.database_items is None or fs.query_items is None:
            raise BenchError(
                f"{loaded.source}: dataset {loaded.experiment.dataset.name} has no items with "
                "identities; clustering compares clusters with item identities")
        items = list(fs.database_items) + list(fs.query_items)
        roles = ["database"] * len(fs.database_items) + ["query"] * len(fs.query_items)
        features = np.concatenate([np.asarray(fs.database), np.asarray(fs.queries)])
        idents = [it.identity if it.identity is not None else it.id for it in items]
        if drop_singletons:
            counts = Counter(idents)
            keep = [i for i, ident in enumerate(idents) if counts[ident] > 1]
            items = [items[i] for i in keep]
            roles = [roles[i] for i in keep]
            idents = [idents[i] for i in keep]
            features = features[keep]
        if len(items) < 2:
            raise BenchError(f"feature set {self.key}: {len(items)} item(s) left to cluster; "
                             "need at least 2")
        self.items, self.roles, self.identities = items, roles, idents
        self.features = np.ascontiguousarray(features)
        self.codes = encode(idents)
        self.n_identities = int(self.codes.max()) + 1

    def rows(self) -> list[dict[str, Any]]:
        return [{"id": it.id, "identity": ident, "path": str(it.path) if it.path else None,
                 "text": it.text, "labels": list(it.labels), "attrs": it.attrs, "role": role}
                for it, ident, role in zip(self.items, self.identities, self.roles, strict=True)]


class _Context:
    """What every run of one (feature set, metric) shares."""

    def __init__(self, view: _ItemsView, space: Space, options: ClusteringOptions,
                 budget: int, threads: int) -> None:
        self.view, self.space, self.options = view, space, options
        self.budget, self.threads = budget, threads
        self.condensed: np.ndarray | None = None
        self.dense_reason = ""
        self.distance_time_s = 0.0
        self.linkages: dict[str, tuple[np.ndarray, float, str]] = {}
        self.graphs: dict[float, tuple[Any, float]] = {}


def run_clustering(loaded: LoadedExperiment, sets: list[FeatureSet],
                   dataset_description: dict[str, Any], options: Any,
                   console: Console) -> ResultsFile:
    """Cluster every feature set with every planned run; returns the saved results file."""
    from threadpoolctl import threadpool_limits

    exp = loaded.experiment
    copts = parse_clustering(loaded)
    planned = plan_runs(copts, exp.metric)
    views = [_ItemsView(loaded, fs, copts.drop_singletons) for fs in sets]
    dataset_description["feature_sets"] = {
        v.key: {**fs.description, "skipped": fs.skipped, "n_items": len(v.items),
                "n_identities": v.n_identities} for v, fs in zip(views, sets, strict=True)}
    header = {
        "name": exp.name, "experiment": exp.model_dump(mode="json"),
        "experiment_source": str(loaded.source), "dataset": dataset_description,
        "environment": environment(exp.threads), "executor": "inline",
    }
    results = ResultsFile.open(exp.name, header, force=options.force)
    fp = fingerprint_obj(copts.model_dump(mode="json", exclude={"grids", "algorithms"}))
    section = results.data.get("clustering")
    if not isinstance(section, dict) or section.get("options_fingerprint") != fp:
        results.data["runs"] = []  # other options give other numbers: start over
        section = {"options_fingerprint": fp, "distances": {}, "identities": {}, "linkages": {}}
    results.data["clustering"] = section
    for view in views:
        path = results.path.parent / "items" / f"{_slug(view.key)}.json"
        atomic_write_json(path, {"database": view.rows(), "queries": []})
        results.data["dataset"]["feature_sets"][view.key]["items_file"] = str(
            path.relative_to(results.path.parent))
    results.save()
    done = set() if options.force else results.finished_keys(
        getattr(options, "retry_failed", False))
    budget = int(copts.memory_budget_mb * 2**20)
    with threadpool_limits(exp.threads):
        for view in views:
            metrics = list(dict.fromkeys(p.metric for p in planned))
            for metric in metrics:
                space = Space(view.features, metric)
                ctx = _Context(view, space, copts, budget, exp.threads)
                _identity_reference(results, ctx, exp.seed, options.force)
                todo = [p for p in planned if p.metric == metric
                        and _run_id(view.key, p, exp.threads) not in done]
                if not todo:
                    continue
                _prepare_distances(results, ctx, todo, console)
                for p in todo:
                    record = _run_one(results, ctx, p, exp.seed, exp.threads)
                    results.add(record)
                    results.save()
                    _say(console, view.key, record)
    return results


def _run_id(key: str, p: PlannedRun, threads: int) -> str:
    return run_key(extractor=key, algorithm=p.algorithm, build=p.build_params(),
                   query=p.query_params(), k=0, mode="clustering", threads=threads)


def _say(console: Console, key: str, r: dict[str, Any]) -> None:
    params = ", ".join(f"{k}={v}" for k, v in r["query_params"].items())
    if r["status"] == "ok":
        console.print(f"  {key} / {r['label']} {params}: {r['n_clusters']} clusters, "
                      f"V={r['v_measure']:.3f} ARI={r['adjusted_rand']:.3f} "
                      f"[{r['distance_path']}]", highlight=False)
    else:
        console.print(f"  {key} / {r['label']} {params}: [red]{r['status']}[/] {r['error']}",
                      highlight=False)


def _identity_reference(results: ResultsFile, ctx: _Context, seed: int, force: bool) -> None:
    """The identities themselves as a clustering: how tight is each true group, and how
    far is it from the nearest other image? The baseline every run is read against."""
    name = f"{ctx.view.key}/{ctx.space.metric}"
    refs = results.data["clustering"]["identities"]
    if name in refs and not force:
        return
    table = cluster_table(ctx.space, ctx.view.codes, ctx.view.identities,
                          quantile=ctx.options.diameter_quantile,
                          max_pairs=ctx.options.max_pairs, seed=seed)
    path = results.path.parent / "clusters" / f"identities-{_slug(ctx.view.key)}-" \
        f"{ctx.space.metric}.json"
    atomic_write_json(path, table)
    refs[name] = {"extractor": ctx.view.key, "metric": ctx.space.metric,
                  "n_identities": ctx.view.n_identities,
                  "clusters_file": str(path.relative_to(results.path.parent)),
                  **table_summary(table)}


def _prepare_distances(results: ResultsFile, ctx: _Context, todo: list[PlannedRun],
                       console: Console) -> None:
    """Build the condensed matrix when some run needs distances and it fits the budget."""
    n = len(ctx.space)
    need = dense_path_bytes(n)
    mode = ctx.options.distances
    wants = any(p.algorithm in ("hierarchical", "dbscan") for p in todo)
    name = f"{ctx.view.key}/{ctx.space.metric}"
    info: dict[str, Any] = {"n_items": n, "condensed_bytes": condensed_bytes(n),
                            "dense_path_bytes": need, "budget_bytes": ctx.budget}
    if not wants:
        info.update(path="features", reason="k-means only: no distances needed")
    elif mode == "sparse":
        ctx.dense_reason = "clustering.distances is sparse"
        info.update(path="sparse", reason=ctx.dense_reason)
    elif need > ctx.budget:
        ctx.dense_reason = (f"the condensed matrix of {n:,} items needs {mib(need)} with "
                            f"linkage's working copy, over clustering.memory_budget_mb "
                            f"({mib(ctx.budget)})")
        info.update(path="sparse" if mode == "auto" else "none", reason=ctx.dense_reason)
    else:
        start = time.perf_counter_ns()
        ctx.condensed = ctx.space.condensed()
        ctx.distance_time_s = _seconds(start)
        info.update(path="dense", time_s=ctx.distance_time_s,
                    reason=f"{mib(need)} fits the budget of {mib(ctx.budget)}")
    results.data["clustering"]["distances"][name] = info
    console.print(f"[bold]distances[/] {name}: {info['path']} ({info['reason']})",
                  highlight=False)


def _linkage(results: ResultsFile, ctx: _Context, method: str) -> tuple[np.ndarray, float, str]:
    if method not in ctx.linkages:
        assert ctx.condensed is not None
        start = time.perf_counter_ns()
        z = algo.linkage_matrix(ctx.condensed, method)
        took = _seconds(start)
        path = results.path.parent / "linkage" / \
            f"{_slug(ctx.view.key)}-{ctx.space.metric}-{method}.npy"
        atomic_save_npy(path, z)
        rel = str(path.relative_to(results.path.parent))
        results.data["clustering"]["linkages"][f"{ctx.view.key}/{ctx.space.metric}/{method}"] = {
            "extractor": ctx.view.key, "metric": ctx.space.metric, "linkage": method,
            "file": rel, "time_s": took, "n_items": len(ctx.space)}
        ctx.linkages[method] = (z, took, rel)
    return ctx.linkages[method]


def _graph(ctx: _Context, eps: float) -> tuple[Any, float, str]:
    if eps not in ctx.graphs:
        ctx.graphs.clear()  # runs come grouped by eps: keep one graph in memory
        start = time.perf_counter_ns()
        if ctx.condensed is not None:
            graph = graph_from_condensed(ctx.condensed, len(ctx.space), eps)
        elif ctx.options.distances == "dense":
            raise BudgetExceeded(f"clustering.distances is dense, but {ctx.dense_reason}")
        else:
            graph = ctx.space.radius_graph(eps, ctx.budget, ctx.threads)
        ctx.graphs[eps] = (graph, _seconds(start))
    graph, took = ctx.graphs[eps]
    return graph, took, "dense" if ctx.condensed is not None else "sparse"


def _resolve(n: int | str | None, ctx: _Context) -> int:
    return ctx.view.n_identities if n == "identities" else int(n or 0)


def _run_one(results: ResultsFile, ctx: _Context, p: PlannedRun, seed: int,
             threads: int) -> dict[str, Any]:
    key, space, view = ctx.view.key, ctx.space, ctx.view
    rid = _run_id(key, p, threads)
    record: dict[str, Any] = {
        "id": rid, "extractor": key, "algorithm": p.algorithm, "label": p.label,
        "group": p.group, "build_params": p.build_params(), "query_params": p.query_params(),
        "k": None, "mode": "clustering", "threads": threads, "runs": 1,
        "n_items": len(space), "n_identities": view.n_identities, "metric": space.metric,
        **({"epoch": view.epoch} if view.epoch is not None else {}),
    }
    prep = 0.0
    try:
        if p.algorithm == "hierarchical":
            if ctx.condensed is None:
                raise BudgetExceeded(f"hierarchical clustering needs the condensed matrix: "
                                     f"{ctx.dense_reason}")
            z, link_s, rel = _linkage(results, ctx, str(p.linkage))
            requested = _resolve(p.n_clusters, ctx)
            record.update(n_clusters_requested=requested, linkage_time_s=link_s,
                          linkage_file=rel, distance_path="dense",
                          cut_height=algo.cut_height(z, requested))
            prep = ctx.distance_time_s + link_s
            start = time.perf_counter_ns()
            labels = algo.cut_tree_at(z, requested)
        elif p.algorithm == "dbscan":
            eps = float(p.eps or 0)
            graph, graph_s, path = _graph(ctx, eps)
            record.update(distance_path=path, graph_edges=int(graph.nnz),
                          graph_time_s=graph_s)
            prep = graph_s + (ctx.distance_time_s if path == "dense" else 0.0)
            start = time.perf_counter_ns()
            labels = algo.dbscan_labels(graph, eps, int(p.min_samples or 1))
        else:
            requested = _resolve(p.n_clusters, ctx)
            record.update(n_clusters_requested=requested, distance_path="features")
            start = time.perf_counter_ns()
            labels = algo.kmeans_labels(space, requested, n_init=int(p.n_init or 1),
                                        max_iter=int(p.max_iter or 300), seed=seed)
        fit_s = _seconds(start)
    except BudgetExceeded as exc:
        return {**record, "status": "failed", "stage": "distances", "error": str(exc),
                "finished": now_iso()}
    except (ValueError, MemoryError, BenchError) as exc:
        return {**record, "status": "failed", "stage": "cluster",
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0], "finished": now_iso()}
    scores = label_scores(view.codes, labels, ctx.options.nmi_average)
    table = cluster_table(space, labels, view.identities, quantile=ctx.options.diameter_quantile,
                          max_pairs=ctx.options.max_pairs, seed=seed)
    folder = results.path.parent
    labels_path = folder / "labels" / f"{rid}.npy"
    clusters_path = folder / "clusters" / f"{rid}.json"
    atomic_save_npy(labels_path, labels)
    atomic_write_json(clusters_path, table)
    total = prep + fit_s
    record.update(
        status="ok", error=None, k=scores["n_clusters"], **scores, **table_summary(table),
        diameter_quantile=ctx.options.diameter_quantile,
        clusters_diameter_sampled=table["diameter_sampled"],
        fit_time_s=fit_s, build_time_s=prep,
        # the CLI's run table shows a throughput column: items clustered per second,
        # distances included
        qps=len(space) / max(total, 1e-9),
        labels_file=str(labels_path.relative_to(folder)),
        clusters_file=str(clusters_path.relative_to(folder)), finished=now_iso())
    return record
