"""Which results.json versions `bench process` reads, and how older ones are upgraded.

Schema 1 is the first published version, so there is nothing to upgrade yet;
when schema 2 arrives, an ``_upgrade_1_to_2`` goes into ``UPGRADES`` and old
results keep processing. Anything else gets one line saying which version is
needed, instead of a KeyError deep inside a plot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.results import SCHEMA_VERSION, load_results

#: schema version -> function returning the results in the next version's shape
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
OLDEST = 1


def load_for_processing(spec: str | Path) -> dict[str, Any]:
    """load_results plus a version check and upgrades to the current schema."""
    results = load_results(spec)
    path = results["_path"]
    schema = results.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise BenchError(f"{path}: field 'schema' must be an integer, got {schema!r}")
    if schema < OLDEST:
        raise BenchError(
            f"{path}: results schema {schema} is too old; bench process reads schema "
            f"{OLDEST} to {SCHEMA_VERSION}: re-run `bench run` to rewrite it"
        )
    while schema < SCHEMA_VERSION:
        results = UPGRADES[schema](results)
        schema += 1
        results["schema"] = schema
    runs = results.get("runs")
    if not isinstance(runs, list):
        raise BenchError(f"{path}: field 'runs' must be a list of run records")
    for i, run in enumerate(runs):
        fields = ("id", "label", "status")
        missing = [f for f in fields if not isinstance(run, dict) or f not in run]
        if missing:
            raise BenchError(f"{path}: runs[{i}] lacks {', '.join(missing)} (schema {schema})")
    return results
