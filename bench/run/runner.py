"""Drive one experiment: dataset -> features -> ground truth -> builds -> results.json.

Each stage reads only what the stage before wrote, and every expensive stage is
cached by a fingerprint of its inputs, so a re-run skips finished work and a run
killed at any point resumes where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.config.experiment import BuildPoint, LoadedExperiment, load_experiment
from bench.core.errors import BenchError
from bench.core.files import atomic_save_npy, atomic_write_json
from bench.core.fingerprint import fingerprint_obj
from bench.core.paths import cache_root
from bench.datasets import DatasetContext, ItemData, VectorData
from bench.datasets import registry as datasets
from bench.features.prepare import FeatureSet, extract_item_features, prepare_vectors
from bench.results import ResultsFile, now_iso, param_text, run_key
from bench.run.executors.task import BuildTask, Failure, PointResult, QueryPoint, TimingPlan
from bench.run.kinds import kind_of
from bench.run.measure import environment
from bench.run.progress import progress_bar
from bench.run.truth import attach_ground_truth
from bench.scoring.judges import Judge, knn_scores, make_judge


@dataclass
class RunOptions:
    force: bool = False
    executor: str = "local"  # local | inline | ray
    progress: bool = True
    workers: int | None = None


def load_feature_sets(
    loaded: LoadedExperiment, console: Console, options: RunOptions
) -> tuple[list[FeatureSet], dict[str, Any]]:
    exp = loaded.experiment
    cache = cache_root()
    data_root = os.environ.get("BENCH_DATA")
    context = DatasetContext(
        seed=exp.seed, cache_dir=cache, base_dir=loaded.base_dir,
        data_root=Path(data_root) if data_root else None,
    )
    dcls = datasets.get(exp.dataset.name)
    dataset = dcls(dcls.Options.model_validate(exp.dataset.options()), context)
    console.print(f"[bold]dataset[/] {exp.dataset.name}: loading")
    data = dataset.load()
    source = f"dataset {exp.dataset.name}"
    sets: list[FeatureSet] = []
    if isinstance(data, VectorData):
        if exp.extractors:
            raise BenchError(
                f"{loaded.source}: extractor: dataset {exp.dataset.name} already yields vectors"
            )
        if data.metric and data.metric != exp.metric:
            console.print(
                f"[yellow]warning:[/] {source} declares metric {data.metric}, experiment uses "
                f"{exp.metric}; the file's own neighbours are not reused"
            )
        sets.append(prepare_vectors(data, exp.metric, extractor=None, source=source,
                                    max_queries=exp.max_queries, cache_dir=cache))
    elif isinstance(data, ItemData):
        if not exp.extractors:
            raise BenchError(
                f"{loaded.source}: dataset {exp.dataset.name} yields {data.modality} items; "
                "add an `extractor:` section to turn them into features"
            )
        workers = options.workers or max(1, os.cpu_count() or 1)
        for section in exp.extractors:
            console.print(f"[bold]features[/] {section.name}: extracting (cached)")
            vectors, skipped = extract_item_features(
                data, section, cache_dir=cache, workers=workers, progress=options.progress,
                seed=exp.seed, executor=options.executor,
            )
            for item_id, reason in skipped:
                console.print(f"[yellow]skipped[/] {item_id}: {reason}")
            fs = prepare_vectors(vectors, exp.metric, extractor=section.name,
                                 source=f"{source} / {section.name}",
                                 max_queries=exp.max_queries, cache_dir=cache)
            fs.skipped = skipped
            sets.append(fs)
    else:  # pragma: no cover - contract violation by a plugin
        raise BenchError(f"dataset {exp.dataset.name} returned {type(data).__name__}")
    description = {
        "name": exp.dataset.name,
        "options": exp.dataset.options(),
        "description": data.description,
        "fingerprint": fingerprint_obj([fs.fingerprint for fs in sets]),
    }
    return sets, description


def _execute(task: BuildTask, executor: str) -> Iterator[tuple[str, Any]]:
    if executor == "inline":
        from bench.run.executors.local import run_inline

        return run_inline(task)
    if executor == "local":
        from bench.run.executors.local import run_in_worker

        return run_in_worker(task)
    if executor == "ray":
        try:
            from bench.run.executors.ray_executor import run_on_ray
        except ImportError as exc:
            raise BenchError(f"executor ray is not available: {exc}") from None
        return run_on_ray(task)
    raise BenchError(f"unknown executor {executor!r}; expected local, inline or ray")


def _base_record(loaded: LoadedExperiment, fs: FeatureSet, bp: BuildPoint,
                 point: QueryPoint) -> dict[str, Any]:
    exp = loaded.experiment
    return {
        "id": point.run_id, "extractor": fs.extractor, "algorithm": bp.algorithm,
        "label": bp.label, "group": bp.group, "build_params": bp.build,
        "query_params": point.params, "k": point.k, "mode": exp.mode, "threads": exp.threads,
        "runs": exp.runs, "n_queries": len(fs.queries), "metric": fs.metric,
    }


def run_build(
    loaded: LoadedExperiment, fs: FeatureSet, bp: BuildPoint, results: ResultsFile,
    judge: Judge | None, options: RunOptions, on_point: Any,
) -> None:
    exp = loaded.experiment
    done = set() if options.force else results.finished_keys()
    points = []
    for qi, qparams in enumerate(bp.queries):
        for k in exp.ks:
            rid = run_key(extractor=fs.extractor, algorithm=bp.algorithm, build=bp.build,
                          query=qparams, k=k, mode=exp.mode, threads=exp.threads)
            if rid not in done:
                points.append(QueryPoint(qi, qparams, k, rid))
            else:
                on_point()
    if not points:
        return
    limit = int(bp.memory_limit_gb * 2**30) if bp.memory_limit_gb else None
    task = BuildTask(
        algorithm=bp.algorithm, build=bp.build, points=points, metric=fs.metric, dim=fs.dim,
        database_path=str(fs.database_path), queries_path=str(fs.queries_path), mode=exp.mode,
        timing=TimingPlan.of(exp), threads=exp.threads, seed=exp.seed, timeout_s=bp.timeout,
        memory_limit_bytes=limit,
    )
    build_info: dict[str, Any] = {}
    finished: set[str] = set()
    this_build: list[dict[str, Any]] = []
    traceback_text = None
    for kind, payload in _execute(task, options.executor):
        if kind == "built":
            build_info = {"build_time_s": payload.build_time_s,
                          "index_uss_bytes": payload.index_uss_bytes,
                          "index_bytes": payload.index_bytes, "probe": payload.probe}
        elif kind == "point":
            record = _point_record(loaded, fs, bp, payload, build_info, results, judge)
            this_build.append(record)
            results.add(record)
            results.save()
            finished.add(payload.point.run_id)
            on_point()
        elif kind == "traceback":
            traceback_text = payload
        elif kind == "failure":
            failure: Failure = payload
            targets = [failure.point] if failure.point else [
                p for p in points if p.run_id not in finished]
            for point in targets:
                record = {**_base_record(loaded, fs, bp, point), **build_info,
                          "status": failure.status, "stage": failure.stage,
                          "error": failure.message, "finished": now_iso()}
                if traceback_text:
                    record["traceback"] = traceback_text
                results.add(record)
                finished.add(point.run_id)
                on_point()
            results.save()
        elif kind == "done":
            for record in this_build:
                record["peak_rss_bytes"] = payload["peak_rss_bytes"]
                record["peak_anon_bytes"] = payload.get("peak_anon_bytes")
            results.save()
    missing = [p for p in points if p.run_id not in finished]
    for point in missing:  # the worker vanished without a word
        results.add({**_base_record(loaded, fs, bp, point), **build_info, "status": "crashed",
                     "stage": "worker", "error": "worker ended without reporting this run",
                     "finished": now_iso()})
        on_point()
    if missing:
        results.save()


def _point_record(
    loaded: LoadedExperiment, fs: FeatureSet, bp: BuildPoint, result: PointResult,
    build_info: dict[str, Any], results: ResultsFile, judge: Judge | None,
) -> dict[str, Any]:
    point = result.point
    record = {**_base_record(loaded, fs, bp, point), **build_info, **result.timing,
              "repeats_s": result.repeats_s, "extra": result.extra, "status": "ok",
              "error": None, "finished": now_iso()}
    assert fs.gt_ids is not None and fs.gt_dist is not None
    try:
        record.update(knn_scores(result.ids, point.k, database=fs.database, queries=fs.queries,
                                 gt_ids=fs.gt_ids, gt_dist=fs.gt_dist, metric=fs.metric))
        if judge is not None:
            record.update(judge.scores(result.ids, point.k))
    except BenchError as exc:  # e.g. duplicate ids: the result is rejected, not scored
        record.update(status="failed", stage="evaluate", error=str(exc))
        return record
    path = results.neighbors_path(point.run_id)
    atomic_save_npy(path, np.ascontiguousarray(result.ids[:, : point.k]))
    record["neighbors_file"] = str(path.relative_to(results.path.parent))
    return record


def run_experiment(spec: str | Path, options: RunOptions | None = None,
                   console: Console | None = None) -> ResultsFile:
    options = options or RunOptions()
    console = console or Console(stderr=True)
    loaded = load_experiment(spec)
    exp = loaded.experiment
    sets, dataset_description = load_feature_sets(loaded, console, options)
    kind = kind_of({"kind": exp.kind})
    if kind is not None:
        return kind.run(loaded, sets, dataset_description, options, console)
    gt_threads = max(1, os.cpu_count() or 1)
    for fs in sets:
        attach_ground_truth(fs, exp.ks, gt_threads, console, options.progress, seed=exp.seed,
                            recompute=exp.ground_truth.reuse == "recompute",
                            device=exp.ground_truth.device)
    dataset_description["feature_sets"] = {
        fs.extractor or "vectors": {**fs.description, "skipped": fs.skipped} for fs in sets
    }
    header = {
        "name": exp.name,
        "experiment": exp.model_dump(mode="json"),
        "experiment_source": str(loaded.source),
        "dataset": dataset_description,
        "environment": environment(exp.threads),
        "executor": options.executor,
    }
    results = ResultsFile.open(exp.name, header, force=options.force)
    for fs in sets:
        _save_items(results, fs)
    results.save()
    total = len(sets) * sum(len(bp.queries) for bp in loaded.builds) * len(exp.ks)
    with progress_bar(console, options.progress) as bar:
        task = bar.add_task("runs", total=total)
        for fs in sets:
            judge = make_judge(loaded, fs)
            for bp in loaded.builds:
                what = f"{fs.extractor + ' / ' if fs.extractor else ''}{bp.label}"
                bar.update(task, description=f"{what} {param_text(bp.build)}")
                run_build(loaded, fs, bp, results, judge, options,
                          on_point=lambda: bar.advance(task))
    return results


def _save_items(results: ResultsFile, fs: FeatureSet) -> None:
    """Item metadata beside results.json, so `bench process` can draw galleries
    (row i of a neighbours file is item i of the database list)."""
    if not fs.database_items:
        return
    key = fs.extractor or "vectors"
    path = results.path.parent / "items" / f"{key}.json"

    def rows(items: list[Any] | None) -> list[dict[str, Any]]:
        return [{"id": it.id, "identity": it.identity,
                 "path": str(it.path) if it.path else None, "text": it.text,
                 "labels": list(it.labels), "attrs": it.attrs} for it in items or []]

    atomic_write_json(path, {"database": rows(fs.database_items),
                             "queries": rows(fs.query_items)})
    results.data["dataset"]["feature_sets"][key]["items_file"] = str(
        path.relative_to(results.path.parent))
