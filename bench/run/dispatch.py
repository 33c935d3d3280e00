"""Run build points concurrently, up to the slots an executor offers, with one writer.

Why this shape:
- Every executor's stream (a pipe to a forked worker, a Ray generator) is a blocking
  iterator. One thread per running build point drains its stream into one queue; the
  driver thread takes messages in arrival order and is the only one that touches
  ``results.json``, so each point is saved (atomically) the moment it arrives, from
  whichever node, and a SIGKILL of the driver loses at most points not yet received.
- ``slots`` is asked again before every start: a Ray cluster that loses a node offers
  one slot fewer, and the points already running there fail alone (``Failure.lost``)
  while the others go on.
- The ``inline`` executor (debugging, pdb) runs in the driver thread, one at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.config.experiment import BuildPoint, LoadedExperiment
from bench.core.errors import BenchError
from bench.core.files import atomic_save_npy
from bench.features.prepare import FeatureSet
from bench.groundtruth.exact import exact_distances
from bench.results import ResultsFile, now_iso
from bench.run.executors.task import BuildTask, Failure, NodeReport, PointResult, QueryPoint
from bench.run.sweep import feature_set_key
from bench.scoring.judges import Judge, knn_scores

Execute = Callable[[BuildTask], Iterator[tuple[str, Any]]]
_END = "__end__"


@dataclass
class Job:
    """One build point on its way through an executor, and what it reported so far."""

    fs: FeatureSet
    bp: BuildPoint
    task: BuildTask
    judge: Judge | None
    label: str
    build_info: dict[str, Any] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    this_build: list[dict[str, Any]] = field(default_factory=list)
    traceback_text: str | None = None
    node: NodeReport | None = None

    @property
    def points(self) -> list[QueryPoint]:
        return self.task.points


class Dispatcher:
    """Feeds jobs to an executor, ``slots()`` at a time, and records what they report."""

    def __init__(self, loaded: LoadedExperiment, results: ResultsFile, execute: Execute,
                 slots: Callable[[], int], *, threaded: bool = True,
                 local_node: NodeReport | None = None,
                 on_point: Callable[[], None] = lambda: None,
                 on_running: Callable[[list[Job]], None] = lambda jobs: None) -> None:
        self.loaded = loaded
        self.results = results
        self.execute = execute
        self.slots = slots
        self.threaded = threaded
        self.local_node = local_node
        self.on_point = on_point
        self.on_running = on_running
        self.running: list[Job] = []

    def run(self, jobs: list[Job]) -> None:
        if not self.threaded:
            for job in jobs:
                self._start(job)
                for kind, payload in self.execute(job.task):
                    self.handle(job, kind, payload)
                self._end(job)
            return
        messages: queue.Queue[tuple[Job, str, Any]] = queue.Queue()
        stop = threading.Event()
        pending = list(jobs)
        try:
            while pending or self.running:
                while pending and len(self.running) < self.slots():
                    job = pending.pop(0)
                    self._start(job)
                    threading.Thread(target=self._drain, args=(job, messages, stop),
                                     name=f"build-{job.label}", daemon=True).start()
                job, kind, payload = messages.get()
                if kind == _END:
                    if payload is not None:
                        raise payload
                    self._end(job)
                else:
                    self.handle(job, kind, payload)
        finally:
            stop.set()

    def _drain(self, job: Job, messages: queue.Queue[tuple[Job, str, Any]],
               stop: threading.Event) -> None:
        error: BaseException | None = None
        stream = None
        try:
            stream = self.execute(job.task)
            for kind, payload in stream:
                messages.put((job, kind, payload))
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the driver thread, which re-raises it
            error = exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # a local worker still running is killed by the stream's finally
            messages.put((job, _END, error))

    def _start(self, job: Job) -> None:
        job.node = self.local_node
        self.running.append(job)
        self.on_running(self.running)

    def _end(self, job: Job) -> None:
        self.running.remove(job)
        missing = [p for p in job.points if p.run_id not in job.finished]
        for point in missing:  # the worker vanished without a word
            self.results.add({**self._base(job, point), "status": "crashed", "stage": "worker",
                              "error": "worker ended without reporting this run",
                              "finished": now_iso()})
            self.on_point()
        if missing:
            self.results.save()
        self.on_running(self.running)

    def handle(self, job: Job, kind: str, payload: Any) -> None:
        """One message of a job's stream: the same protocol under every executor."""
        results = self.results
        if kind == "node":
            job.node = payload
            self.on_running(self.running)
        elif kind == "built":
            job.build_info = {"build_time_s": payload.build_time_s,
                              "index_uss_bytes": payload.index_uss_bytes,
                              "index_bytes": payload.index_bytes, "probe": payload.probe,
                              "build_cpu_s": payload.build_cpu_s}
        elif kind == "point":
            record = point_record(self.loaded, job, payload, results)
            job.this_build.append(record)
            results.add(record)
            results.save()
            job.finished.add(payload.point.run_id)
            self.on_point()
        elif kind == "traceback":
            job.traceback_text = payload
        elif kind == "failure":
            failure: Failure = payload
            targets = [failure.point] if failure.point else [
                p for p in job.points if p.run_id not in job.finished]
            for point in targets:
                record = {**self._base(job, point), "status": failure.status,
                          "stage": failure.stage, "error": failure.message,
                          "finished": now_iso()}
                if failure.lost:
                    record["node_lost"] = True
                if job.traceback_text:
                    record["traceback"] = job.traceback_text
                results.add(record)
                job.finished.add(point.run_id)
                self.on_point()
            results.save()
        elif kind == "done":
            for record in job.this_build:
                record["peak_rss_bytes"] = payload["peak_rss_bytes"]
                record["peak_anon_bytes"] = payload.get("peak_anon_bytes")
            results.save()

    def _base(self, job: Job, point: QueryPoint) -> dict[str, Any]:
        return {**base_record(self.loaded, job, point), **job.build_info}


def node_fields(node: NodeReport | None) -> dict[str, Any]:
    if node is None:
        return {}
    return {"node": {"hostname": node.hostname, "ray_node_id": node.ray_node_id,
                     "cpu": node.cpu, "cpu_count": node.cpu_count}}


def base_record(loaded: LoadedExperiment, job: Job, point: QueryPoint) -> dict[str, Any]:
    exp = loaded.experiment
    fs, bp = job.fs, job.bp
    return {
        "id": point.run_id, "extractor": fs.extractor, "algorithm": bp.algorithm,
        "label": bp.label, "group": bp.group, "build_params": bp.build,
        "query_params": point.params, "k": point.k, "mode": exp.mode,
        "threads": job.task.threads, "build_threads": job.task.build_threads or job.task.threads,
        "runs": exp.runs, "n_queries": len(fs.queries), "n_database": len(fs.database),
        "metric": fs.metric,
        **({"epoch": fs.description["epoch"]} if "epoch" in fs.description else {}),
        **node_fields(job.node),
        **({"sweep": fs.sweep, "feature_set": feature_set_key(fs)} if fs.sweep else {}),
    }


def point_record(loaded: LoadedExperiment, job: Job, result: PointResult,
                 results: ResultsFile) -> dict[str, Any]:
    fs, point = job.fs, result.point
    record = {**base_record(loaded, job, point), **job.build_info, **result.timing,
              "repeats_s": result.repeats_s, "extra": result.extra, "status": "ok",
              "error": None, "finished": now_iso()}
    assert fs.gt_ids is not None and fs.gt_dist is not None
    try:
        ids = np.ascontiguousarray(result.ids[:, : point.k])
        dist = exact_distances(fs.database, fs.queries, ids, fs.metric)
        record.update(knn_scores(ids, point.k, database=fs.database, queries=fs.queries,
                                 gt_ids=fs.gt_ids, gt_dist=fs.gt_dist, metric=fs.metric,
                                 dist=dist))
        if job.judge is not None:
            record.update(job.judge.scores(result.ids, point.k))
    except BenchError as exc:  # e.g. duplicate ids: the result is rejected, not scored
        record.update(status="failed", stage="evaluate", error=str(exc))
        return record
    # the exact distances of the returned ids go beside them, so `bench process` draws
    # its galleries from results/<name>/ alone (no feature cache needed)
    path = results.neighbors_path(point.run_id)
    dist_path = path.with_name(f"{point.run_id}.dist.npy")
    atomic_save_npy(dist_path, dist.astype(np.float32))
    atomic_save_npy(path, ids)
    record["neighbors_file"] = str(path.relative_to(results.path.parent))
    record["distances_file"] = str(dist_path.relative_to(results.path.parent))
    return record
