"""Drive one experiment: dataset -> features -> ground truth -> builds -> results.json.

Each stage reads only what the stage before wrote, and every expensive stage is
cached by a fingerprint of its inputs, so a re-run skips finished work and a run
killed at any point resumes where it stopped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from bench.config.experiment import BuildPoint, LoadedExperiment, load_experiment
from bench.core.errors import BenchError
from bench.core.files import atomic_save_npy, atomic_write_json
from bench.core.fingerprint import fingerprint_obj
from bench.core.kinds import kind_of
from bench.core.paths import cache_root
from bench.datasets import DatasetContext, ItemData, VectorData
from bench.datasets import registry as datasets
from bench.features.postprocess import postprocess_vectors
from bench.features.prepare import FeatureSet, extract_item_features, prepare_vectors
from bench.groundtruth.exact import exact_distances
from bench.results import ResultsFile, param_text, run_key
from bench.results.store import releasing_locks
from bench.run.dispatch import Dispatcher, Execute, Job
from bench.run.executors.task import BuildTask, QueryPoint, TimingPlan
from bench.run.measure import environment, node_report
from bench.run.progress import progress_bar
from bench.run.replicas import with_replicas
from bench.run.sweep import expand_sets, feature_set_key
from bench.run.truth import attach_ground_truth
from bench.scoring.judges import Judge, make_judge


@dataclass
class RunOptions:
    force: bool = False
    executor: str = "local"  # local | inline | ray
    progress: bool = True
    workers: int | None = None
    #: build points at once with the local executor (only for ``timing: false``)
    parallel: int = 1
    #: redo the runs recorded as failed / crashed / timeout / oom, skip the rest
    retry_failed: bool = False


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
        data = postprocess_vectors(data, exp.postprocess, source)
        for metric in exp.metrics:
            if data.metric and data.metric != metric:
                console.print(
                    f"[yellow]warning:[/] {source} declares metric {data.metric}, experiment "
                    f"uses {metric}; the file's own neighbours are not reused"
                )
            sets.append(prepare_vectors(data, metric, extractor=None, source=source,
                                        max_queries=exp.max_queries, cache_dir=cache))
    elif isinstance(data, ItemData):
        if not exp.extractors:
            raise BenchError(
                f"{loaded.source}: dataset {exp.dataset.name} yields {data.modality} items; "
                "add an `extractor:` section to turn them into features"
            )
        workers = options.workers or max(1, os.cpu_count() or 1)
        for section in exp.extractors:
            console.print(f"[bold]features[/] {section.key}: extracting (cached)")
            vectors, skipped = extract_item_features(
                data, section, cache_dir=cache, workers=workers, progress=options.progress,
                seed=exp.seed, executor=options.executor,
            )
            for item_id, reason in skipped:
                console.print(f"[yellow]skipped[/] {item_id}: {reason}")
            vectors = postprocess_vectors(vectors, exp.postprocess, f"{source} / {section.key}")
            for metric in exp.metrics:
                fs = prepare_vectors(vectors, metric, extractor=section.key,
                                     source=f"{source} / {section.key}",
                                     max_queries=exp.max_queries, cache_dir=cache,
                                     shuffle_seed=exp.seed)
                fs.skipped = skipped
                if section.epoch is not None:  # a checkpoint of a fine-tuning run
                    fs.description["epoch"] = section.epoch
                sets.append(fs)
    else:  # pragma: no cover - contract violation by a plugin
        raise BenchError(f"dataset {exp.dataset.name} returned {type(data).__name__}")
    sets = expand_sets(exp, sets, cache)
    description = {
        "name": exp.dataset.name,
        "options": exp.dataset.options(),
        "description": data.description,
        "fingerprint": fingerprint_obj([fs.fingerprint for fs in sets]),
    }
    return sets, description


def _executor(options: RunOptions) -> tuple[Execute, Callable[[], int], bool, Any]:
    """(run one build point, how many at once, threaded, the node records name)."""
    executor = options.executor
    if executor == "inline":
        from bench.run.executors.local import run_inline

        return run_inline, lambda: 1, False, node_report()
    if executor == "local":
        from bench.run.executors.local import run_in_worker

        return run_in_worker, lambda: options.parallel, True, node_report()
    if executor == "ray":
        try:
            from bench.run.executors import ray_executor
        except ImportError as exc:
            raise BenchError(f"executor ray is not available: {exc}") from None
        return ray_executor.run_on_ray, ray_executor.slots, True, None
    raise BenchError(f"unknown executor {executor!r}; expected local, inline or ray")


def _check_parallel(loaded: LoadedExperiment, options: RunOptions) -> None:
    """Two timed runs must never share the cores: ``--parallel`` only where nothing is timed."""
    n = options.parallel
    if n < 1:
        raise BenchError(f"--parallel must be at least 1, got {n}")
    if n == 1:
        return
    if options.executor != "local":
        raise BenchError(f"--parallel applies to --executor local only (got --executor "
                         f"{options.executor}; ray runs one build point per bench_slot)")
    exp = loaded.experiment
    if exp.kind != "search":
        raise BenchError(f"{loaded.source}: --parallel applies to search experiments; a "
                         f"{exp.kind} experiment runs in one process")
    if exp.timing:
        raise BenchError(f"{loaded.source}: --parallel {n} needs `timing: false` in the "
                         "experiment (two timed runs must never share the cores)")


def plan_build(loaded: LoadedExperiment, fs: FeatureSet, bp: BuildPoint, judge: Judge | None,
               done: set[str], threads: int | None = None) -> tuple[Job | None, int]:
    """The job of one build point's unfinished query points (None: all done), and how
    many of its points are already recorded; ``threads``: the query threads (default:
    the experiment's first count)."""
    exp = loaded.experiment
    threads = threads or exp.thread_counts[0]
    points = []
    skipped = 0
    for qi, qparams in enumerate(bp.queries):
        for k in exp.ks:
            rid = run_key(extractor=fs.extractor, algorithm=bp.algorithm, build=bp.build,
                          query=qparams, k=k, mode=exp.mode, threads=threads,
                          sweep=fs.sweep or None)
            if rid in done:
                skipped += 1
            else:
                points.append(QueryPoint(qi, qparams, k, rid))
    if not points:
        return None, skipped
    limit = int(bp.memory_limit_gb * 2**30) if bp.memory_limit_gb else None
    task = BuildTask(
        algorithm=bp.algorithm, build=bp.build, points=points, metric=fs.metric, dim=fs.dim,
        database_path=str(fs.database_path), queries_path=str(fs.queries_path), mode=exp.mode,
        timing=TimingPlan.of(exp), threads=threads, seed=exp.seed, timeout_s=bp.timeout,
        memory_limit_bytes=limit, build_threads=exp.build_thread_count,
    )
    label = f"{fs.extractor + ' / ' if fs.extractor else ''}{bp.label} {param_text(bp.build)}"
    return Job(fs, bp, task, judge, label.strip()), skipped


def _describe_running(jobs: list[Job]) -> str:
    if not jobs:
        return "runs"
    parts = [f"{j.node.short()}: {j.label}" if j.node and j.node.ray_node_id else j.label
             for j in jobs]
    text = " | ".join(parts)
    return escape(text if len(text) <= 100 else text[:99] + "…")


@releasing_locks
def run_experiment(spec: str | Path, options: RunOptions | None = None,
                   console: Console | None = None) -> ResultsFile:
    options = options or RunOptions()
    console = console or Console(stderr=True)
    loaded = load_experiment(spec)
    exp = loaded.experiment
    _check_parallel(loaded, options)
    sets, dataset_description = load_feature_sets(loaded, console, options)
    kind = kind_of({"kind": exp.kind})
    if kind is not None:
        return kind.run(loaded, sets, dataset_description, options, console)
    gt_threads = max(1, os.cpu_count() or 1)
    for fs in sets:
        attach_ground_truth(fs, exp.ks, gt_threads, console, options.progress, seed=exp.seed,
                            recompute=exp.ground_truth.reuse == "recompute",
                            device=exp.ground_truth.device, executor=options.executor)
    dataset_description["feature_sets"] = {
        feature_set_key(fs): {**fs.description, "skipped": fs.skipped} for fs in sets
    }
    header = {
        "name": exp.name,
        "experiment": exp.model_dump(mode="json"),
        "experiment_source": str(loaded.source),
        "dataset": dataset_description,
        "environment": {**environment(exp.threads), "build_threads": exp.build_thread_count},
        "executor": options.executor,
        "parallel": options.parallel,
    }
    results = ResultsFile.open(exp.name, header, force=options.force)
    for fs in sets:
        _save_items(results, fs)
    results.save()
    execute, slots, threaded, local_node = _executor(options)
    if exp.replicas > 1:  # N fresh workers per build, samples pooled (bench.run.replicas)
        execute = with_replicas(execute, exp.replicas, exp.target_ci)
    done = set() if options.force else results.finished_keys(options.retry_failed)
    jobs: list[Job] = []
    already = 0
    for fs in sets:
        judge = make_judge(loaded, fs)
        for threads, bp in itertools.product(exp.thread_counts, loaded.builds):
            job, skipped = plan_build(loaded, fs, bp, judge, done, threads)
            already += skipped
            if job is not None:
                jobs.append(job)
    total = already + sum(len(job.points) for job in jobs)
    with progress_bar(console, options.progress) as bar:
        task = bar.add_task("runs", total=total, completed=already)
        dispatcher = Dispatcher(
            loaded, results, execute, slots, threaded=threaded, local_node=local_node,
            on_point=lambda: bar.advance(task),
            on_running=lambda running: bar.update(task, description=_describe_running(running)),
        )
        dispatcher.run(jobs)
    return results


def _save_items(results: ResultsFile, fs: FeatureSet) -> None:
    """Item metadata beside results.json, so `bench process` can draw galleries
    (row i of a neighbours file is item i of the database list)."""
    if not fs.database_items:
        return
    key = feature_set_key(fs)
    path = results.path.parent / "items" / f"{key}.json"

    def rows(items: list[Any] | None) -> list[dict[str, Any]]:
        return [{"id": it.id, "identity": it.identity,
                 "path": str(it.path) if it.path else None, "text": it.text,
                 "labels": list(it.labels), "attrs": it.attrs} for it in items or []]

    atomic_write_json(path, {"database": rows(fs.database_items),
                             "queries": rows(fs.query_items),
                             "attack_families": _attack_families(fs)})
    desc = results.data["dataset"]["feature_sets"][key]
    desc["items_file"] = str(path.relative_to(results.path.parent))
    originals = _original_rows(fs)
    if originals is not None:
        dist = exact_distances(fs.database, fs.queries, originals[:, None], fs.metric)[:, 0]
        dist_path = path.with_name(f"{key}.original_dist.npy")
        atomic_save_npy(dist_path, dist.astype(np.float32))
        desc["original_distances_file"] = str(dist_path.relative_to(results.path.parent))


def _attack_families(fs: FeatureSet) -> list[str]:
    """The attack table's family order, for the families these queries use: `bench process`
    groups its attack figures by it without importing the dataset stage."""
    from bench.datasets.prepare.attacks import FAMILIES

    used = {str((q.attrs or {}).get("family")) for q in fs.query_items or []}
    return [f for f in FAMILIES if f in used]


def _original_rows(fs: FeatureSet) -> np.ndarray | None:
    """Database row of each query's original (the first item of its identity; -1 for a
    query without one), or None when the items carry no identities."""
    first: dict[str, int] = {}
    for row, item in enumerate(fs.database_items or []):
        if item.identity is not None:
            first.setdefault(str(item.identity), row)
    if not first or not fs.query_items:
        return None
    return np.array([first.get(str(q.identity), -1) if q.identity is not None else -1
                     for q in fs.query_items], dtype=np.int64)

