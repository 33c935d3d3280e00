"""results.json: schema, atomic writes, the one loader (with schema upgrades).

The file is rewritten atomically (temp file + fsync + rename) after every
finished build, so a run killed at any moment, even with SIGKILL, leaves either
the previous or the next complete file, never a torn one; a re-run then skips
the runs it finds. Neighbour ids of each run are saved beside it as .npy files,
written before the record that points at them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.core.errors import BenchError
from bench.core.files import atomic_write_json
from bench.core.paths import results_root

_R = TypeVar("_R")

SCHEMA_VERSION = 1
#: the oldest schema still read; older files get one line asking for a re-run
OLDEST_SCHEMA = 1
#: schema version -> function returning the results in the next version's shape. Schema
#: 1 is the first published one, so there is nothing to upgrade yet; schema 2 adds an
#: ``_upgrade_1_to_2`` here and every reader (run's resume, process, compare) gets it.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def results_dir(name: str) -> Path:
    return results_root() / name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsFile:
    """In-memory view of one results.json with incremental, atomic saving."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, name: str, header: dict[str, Any], *, force: bool = False) -> ResultsFile:
        """The results of ``name``, locked for this process, merged with what is there.

        Runs recorded before are kept: a re-run skips them, ``--force`` re-measures and
        replaces them one by one (so a run stopped half-way loses nothing). When the
        dataset changed under the same name, the old runs measure something else:
        refused with one line, or with ``force`` moved aside to ``results.<time>.json``.
        """
        path = results_dir(name) / "results.json"
        hold_lock(path.parent)
        data: dict[str, Any] | None = None
        if path.exists():
            existing = load_results(path)
            existing.pop("_path", None)
            old = (existing.get("dataset") or {}).get("fingerprint")
            new = (header.get("dataset") or {}).get("fingerprint")
            if old == new or not existing.get("runs"):
                data = existing
            elif not force:
                raise BenchError(
                    f"{path}: holds {len(existing['runs'])} runs of another version of the "
                    f"dataset (fingerprint {str(old)[:12]}, now {str(new)[:12]}); use --force "
                    "to keep them aside in results.<time>.json and start again, or give the "
                    "experiment a new name"
                )
            else:
                stamp = str(existing.get("updated") or now_iso()).replace(":", "")
                path.rename(path.with_name(f"results.{stamp}.json"))
        if data is None:
            data = {"schema": SCHEMA_VERSION, "created": now_iso(), "runs": []}
        data.update(header)
        data["schema"] = SCHEMA_VERSION
        return cls(path, data)

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.data["runs"]

    def finished_keys(self, retry_failed: bool = False) -> set[str]:
        """Runs a re-run skips: all recorded ones, or with ``retry_failed`` only those
        that succeeded (failed, crashed, timed-out and out-of-memory runs are redone)."""
        return {r["id"] for r in self.runs
                if not r.get("node_lost") and (not retry_failed or r.get("status") == "ok")}

    def add(self, record: dict[str, Any]) -> None:
        self.data["runs"] = [r for r in self.runs if r["id"] != record["id"]]
        self.data["runs"].append(record)

    def neighbors_path(self, run_id: str) -> Path:
        return self.path.parent / "neighbors" / f"{run_id}.npy"

    def save(self) -> None:
        self.data["updated"] = now_iso()
        atomic_write_json(self.path, self.data)


#: results folders this process holds the lock of (path -> open lock file)
_LOCKS: dict[Path, Any] = {}


def hold_lock(folder: Path) -> None:
    """Lock a results folder for this process, or say who holds it.

    Two runs of one experiment at once would interleave their saves and time their
    configurations on the same cores. ``flock`` is released by the kernel when the
    holder dies, so a killed run never leaves a stale lock behind; the file only
    carries the holder's pid and start time for the message.
    """
    import fcntl
    import os

    folder = folder.resolve()  # one key whether or not the folder exists yet
    if folder in _LOCKS:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a+")  # noqa: SIM115 - held for the process's life
    except OSError as exc:
        raise BenchError(f"{folder}: cannot be written ({exc.strerror or exc}); set "
                         "BENCH_RESULTS to a writable folder") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise BenchError(f"{folder}: another bench run is writing these results ({holder}); "
                         "wait for it to finish or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {now_iso()}\n")
    handle.flush()
    _LOCKS[folder] = handle


def release_lock(folder: Path) -> None:
    handle = _LOCKS.pop(folder, None)
    if handle is not None:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def releasing_locks(fn: Callable[..., _R]) -> Callable[..., _R]:
    """Release the results locks taken during ``fn`` when it returns or raises: a run holds
    its folder for exactly as long as it writes there, also when one process runs several
    experiments one after another (``--repeat``, a test suite)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> _R:
        before = set(_LOCKS)
        try:
            return fn(*args, **kwargs)
        finally:
            for folder in set(_LOCKS) - before:
                release_lock(folder)

    return wrapper


def load_results(spec: str | Path) -> dict[str, Any]:
    """Load a results.json given its path, its folder, or an experiment name."""
    path = Path(spec)
    if path.is_dir():
        path = path / "results.json"
    elif not path.exists() and path.suffix != ".json":
        path = results_dir(str(spec)) / "results.json"
    if not path.exists():
        raise BenchError(f"{path}: results file not found (run `bench run` first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise BenchError(f"{path}: not UTF-8 text; not a featbench results file") from None
    except OSError as exc:
        raise BenchError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict) or "schema" not in data:
        raise BenchError(f"{path}: no 'schema' field; not a featbench results file")
    data = _upgraded(data, path)
    data["_path"] = str(path)
    return data


def _upgraded(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check the version and shape every reader relies on, upgrading older files.

    A wrongly typed file gets one line naming the field here, instead of a KeyError
    deep inside a plot, the gate or a resumed run.
    """
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise BenchError(f"{path}: field 'schema' must be an integer, got {schema!r}")
    if schema > SCHEMA_VERSION:
        raise BenchError(
            f"{path}: schema version {schema} is newer than this featbench supports "
            f"({SCHEMA_VERSION}); upgrade featbench"
        )
    if schema < OLDEST_SCHEMA:
        raise BenchError(
            f"{path}: results schema {schema} is too old; featbench reads schema "
            f"{OLDEST_SCHEMA} to {SCHEMA_VERSION}: re-run `bench run` to rewrite it"
        )
    while schema < SCHEMA_VERSION:
        data = UPGRADES[schema](data)
        schema += 1
        data["schema"] = schema
    runs = data.get("runs", [])
    if not isinstance(runs, list):
        raise BenchError(f"{path}: field 'runs' must be a list of run records")
    for i, run in enumerate(runs):
        missing = [f for f in ("algorithm", "k", "label", "status")
                   if not isinstance(run, dict) or f not in run]
        if missing:
            raise BenchError(f"{path}: runs[{i}] lacks {', '.join(missing)} (schema {schema})")
        problem = _run_field_problem(run)
        if problem is not None:
            raise BenchError(f"{path}: runs[{i}].{problem}")
    data.setdefault("runs", runs)
    return data


#: fields every reader indexes or computes with, and what they must be
_TEXT_FIELDS = ("id", "algorithm", "label", "status", "extractor", "mode")
_NUMBER_FIELDS = ("recall", "hit_rate", "qps", "build_time_s", "search_time_s", "index_bytes",
                  "index_uss_bytes", "index_anon_bytes", "threads")


def _run_field_problem(run: dict[str, Any]) -> str | None:
    """A wrongly typed field of one run record (``k: "ten"``), as ``field: what``."""
    k = run.get("k")  # None for kinds without a k (clustering)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        return f"k: expected a positive integer, got {k!r}"
    for name in _TEXT_FIELDS:
        value = run.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name}: expected text, got {value!r}"
    for name in _NUMBER_FIELDS:
        value = run.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{name}: expected a number, got {value!r}"
    for name in ("build_params", "query_params"):
        value = run.get(name)
        if value is not None and not isinstance(value, dict):
            return f"{name}: expected a mapping, got {value!r}"
    return None
