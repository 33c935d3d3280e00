"""results.json: schema, atomic writes, loading, run keys.

The file is rewritten atomically (temp file + fsync + rename) after every
finished build, so a run killed at any moment, even with SIGKILL, leaves either
the previous or the next complete file, never a torn one; a re-run then skips
the runs it finds. Neighbour ids of each run are saved beside it as .npy files,
written before the record that points at them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.files import atomic_write_json
from bench.core.fingerprint import fingerprint_obj
from bench.core.paths import results_root

SCHEMA_VERSION = 1
def results_dir(name: str) -> Path:
    return results_root() / name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_key(
    *, extractor: str | None, algorithm: str, build: dict[str, Any], query: dict[str, Any],
    k: int, mode: str, threads: int,
) -> str:
    return fingerprint_obj(
        {"extractor": extractor, "algorithm": algorithm, "build": build, "query": query,
         "k": k, "mode": mode, "threads": threads}
    )[:20]


class ResultsFile:
    """In-memory view of one results.json with incremental, atomic saving."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, name: str, header: dict[str, Any], *, force: bool = False) -> ResultsFile:
        path = results_dir(name) / "results.json"
        data: dict[str, Any] | None = None
        if path.exists() and not force:
            existing = load_results(path)
            if existing.get("dataset", {}).get("fingerprint") == header.get("dataset", {}).get(
                "fingerprint"
            ):
                data = existing
                data.pop("_path", None)
        if data is None:
            data = {"schema": SCHEMA_VERSION, "created": now_iso(), "runs": []}
        data.update(header)
        data["schema"] = SCHEMA_VERSION
        return cls(path, data)

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.data["runs"]

    def finished_keys(self) -> set[str]:
        return {r["id"] for r in self.runs}

    def add(self, record: dict[str, Any]) -> None:
        self.data["runs"] = [r for r in self.runs if r["id"] != record["id"]]
        self.data["runs"].append(record)

    def neighbors_path(self, run_id: str) -> Path:
        return self.path.parent / "neighbors" / f"{run_id}.npy"

    def save(self) -> None:
        self.data["updated"] = now_iso()
        atomic_write_json(self.path, self.data)


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
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema is None:
        raise BenchError(f"{path}: no 'schema' field; not a featbench results file")
    if schema > SCHEMA_VERSION:
        raise BenchError(
            f"{path}: schema version {schema} is newer than this featbench supports "
            f"({SCHEMA_VERSION}); upgrade featbench"
        )
    data["_path"] = str(path)
    return data
