"""Run a build point in its own worker process, with a time limit and a memory cap.

Workers come from a ``forkserver`` whose server has already imported numpy,
faiss and the backends: a fork of a clean, thread-free process starts in
milliseconds (unlike ``spawn``) without the deadlocks that ``fork`` of a
multi-threaded parent invites. The parent watches the worker: past the time
limit or the memory cap it kills it, and a death by signal (a segfault in a C++
library) becomes a failed run rather than a lost experiment.

The cap, and the peak reported with every run, count the worker's anonymous memory
(resident minus file-backed and shared pages): the database is memory-mapped, and its
pages in the page cache are reclaimable, so a Flat build that reads all 8 GB of a
mapped file is not 8 GB closer to the cap than one that reads none of it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil

from bench.run.executors.task import BuildTask, Failure

_POLL_S = 0.05
_CONTEXT: Any = None
_CONTEXT_LOCK = threading.Lock()  # the runner starts workers from several threads


def _context() -> Any:
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                ctx.set_forkserver_preload(["bench.run.executors.preload"])
            _CONTEXT = ctx
    return _CONTEXT


def run_inline(task: BuildTask) -> Iterator[tuple[str, Any]]:
    """Same protocol in the calling process: no isolation, for debugging."""
    from bench.run.executors.worker import run_task

    messages: list[tuple[str, Any]] = []
    run_task(task, messages.append)
    yield from messages


def run_in_worker(task: BuildTask) -> Iterator[tuple[str, Any]]:
    from bench.run.executors.worker import worker_main

    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker_main, args=(task, child), daemon=True)
    proc.start()
    child.close()
    started = time.monotonic()
    ps = psutil.Process(proc.pid)
    stage = "build"
    finished = False
    peak_anon = 0
    try:
        while True:
            if parent.poll(_POLL_S):
                try:
                    kind, payload = parent.recv()
                except (EOFError, OSError):
                    break
                if kind == "built":
                    stage = "search"
                if kind == "done":
                    finished = True
                    payload = {**payload, "peak_anon_bytes": max(
                        peak_anon, int(payload.get("peak_anon_bytes") or 0))}
                yield kind, payload
                continue
            if not proc.is_alive():
                # drain anything sent just before exit
                while parent.poll(0):
                    try:
                        kind, payload = parent.recv()
                    except (EOFError, OSError):
                        break
                    finished = finished or kind == "done"
                    yield kind, payload
                break
            elapsed = time.monotonic() - started
            if elapsed > task.timeout_s:
                _kill(proc)
                yield "failure", Failure(
                    "timeout", stage, f"timed out after {task.timeout_s:g} s during {stage}"
                )
                return
            anon = _anonymous(ps)
            peak_anon = max(peak_anon, anon)
            if task.memory_limit_bytes is not None and anon > task.memory_limit_bytes:
                _kill(proc)
                yield "failure", Failure(
                    "oom", stage,
                    f"worker's anonymous memory reached {anon / 2**30:.2f} GiB during {stage} "
                    f"({_data_gib(task)} of data), over the cap of "
                    f"{task.memory_limit_bytes / 2**30:.2f} GiB",
                )
                return
        proc.join(5)
        code = proc.exitcode
        if not finished:
            if code is not None and code < 0:
                name = signal.Signals(-code).name
                yield "failure", Failure(
                    "crashed", stage, f"worker killed by {name} during {stage}"
                )
            elif code not in (0, None):
                yield "failure", Failure("crashed", stage, f"worker exited with code {code}")
    finally:
        if proc.is_alive():
            _kill(proc)
        parent.close()


def _anonymous(ps: psutil.Process) -> int:
    """Resident anonymous memory of the worker (Linux: RSS less file-backed and shared
    pages, from statm: cheap enough to read at every poll)."""
    try:
        info = ps.memory_info()
    except psutil.Error:
        return 0
    return int(info.rss - getattr(info, "shared", 0))


def _data_gib(task: BuildTask) -> str:
    try:
        return f"{os.path.getsize(task.database_path) / 2**30:.2f} GiB"
    except OSError:
        return "unknown size"


def _kill(proc: Any) -> None:
    proc.kill()
    proc.join(5)
