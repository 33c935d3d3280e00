"""Run build points as Ray tasks, one per ``bench_slot``, with the local executor's protocol.

Why this shape:
- Each build point is one Ray task that asks for one unit of the custom resource
  ``bench_slot``. Every node offers exactly one slot (a local instance is started with
  ``resources={"bench_slot": 1}``; cluster nodes with ``ray start --resources
  '{"bench_slot": 1}'``), so two timed runs never share a machine, whatever Ray's CPU
  accounting says. The task asks for no CPUs, so a sharded backend's actors or a machine
  with fewer cores than ``threads`` can never deadlock the scheduler.
- Inside the Ray task the build runs through the local executor (``run_in_worker``): a
  forked worker with the same time limit, memory cap and crash handling as on one
  machine, so ``timeout``/``oom``/``crashed`` mean the same thing under both executors.
- Messages stream back as they happen through a Ray generator task, so when the Ray
  worker or its node dies mid-run, the points already measured are kept and only the
  unfinished ones become ``crashed`` (Ray's own task retry is off: a silently repeated
  timing run would be a lie).
- Arrays: the task carries cache paths. On a single node, or a cluster whose nodes share
  the cache folder (NFS, the same ``BENCH_CACHE``), the worker memory-maps them as
  locally. When a path is not readable on the node, the driver's copy travels through
  Ray's object store instead and is written to a node-local temporary file, once per
  task; this costs one transfer of the database per build point, which is why the shared
  filesystem is the recommended set-up (see docs/scaling.md).
- The runner (bench.run.dispatch) keeps ``slots()`` tasks in flight and drains each
  stream in its own thread; the first message of every stream names the node.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cluster import (  # noqa: F401 - configure/ensure_ray: the executor's API
    ADDRESS_ENV,
    SLOT,
    _check_reachable,
    _first_line,
    _ray,
    configure,
    ensure_ray,
    needs_shipping,
)
from bench.core.cluster import slots as _slots
from bench.run.executors.task import BuildTask, Failure

_remote: Any = None


def _run_remote(task: BuildTask, shipped: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Body of the Ray task (runs on the node)."""
    import ray

    from bench.run.executors.local import run_in_worker
    from bench.run.measure import node_report

    context = ray.get_runtime_context()
    yield "node", node_report(context.get_node_id())
    # a sharded backend in the forked worker joins this cluster instead of starting one
    os.environ[ADDRESS_ENV] = context.gcs_address
    tmp = None
    try:
        if shipped:
            tmp = tempfile.TemporaryDirectory(prefix="featbench-ray-")
            changes = {}
            for field, ref in shipped.items():  # refs nested in a dict are not resolved
                path = Path(tmp.name) / f"{field}.npy"
                np.save(path, ray.get(ref))
                changes[field] = str(path)
            task = dataclasses.replace(task, **changes)
        yield from run_in_worker(task)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _remote_fn() -> Any:
    global _remote
    if _remote is None:
        ray = _ray()
        _remote = ray.remote(num_cpus=0, resources={SLOT: 1}, max_retries=0)(_run_remote)
    return _remote


def slots() -> int:
    """Build points the cluster runs at once (its ``bench_slot`` units, live nodes only)."""
    return _slots(ensure_ray())


def submit(task: BuildTask) -> Any:
    """Start the Ray task now and return its stream of message refs (see ``drain``)."""
    ray = ensure_ray()
    shipped = {}
    for field in ("database_path", "queries_path"):
        path = getattr(task, field)
        if needs_shipping(ray, path):
            shipped[field] = ray.put(np.load(path))
    return _remote_fn().remote(task, shipped)


def drain(stream: Any) -> Iterator[tuple[str, Any]]:
    """The messages of a submitted task; a lost worker or node becomes ``crashed``."""
    ray = _ray()
    stage = "build"
    done = False
    try:
        for ref in stream:
            kind, payload = ray.get(ref)
            if kind == "built":
                stage = "search"
            done = done or kind == "done"
            yield kind, payload
    except ray.exceptions.RayError as exc:
        if not done:
            yield "failure", Failure("crashed", stage, _describe(exc, stage), lost=True)


def run_on_ray(task: BuildTask) -> Iterator[tuple[str, Any]]:
    """What ``bench.run.runner._execute`` calls for ``--executor ray``."""
    yield from drain(submit(task))


def _describe(exc: BaseException, stage: str) -> str:
    name = type(exc).__name__
    first = _first_line(exc)
    text = f"ray worker lost during {stage} ({name}"
    return f"{text}: {first})"


def shutdown() -> None:
    """Stop the local instance (tests, benchmarks)."""
    ray = _ray()
    global _remote
    if ray.is_initialized():
        ray.shutdown()
    _remote = None
