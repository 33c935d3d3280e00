"""Compact, reviewable baselines for the regression gate.

A baseline is committed to the repository and changed in pull requests, so it
must diff well: sorted keys, values rounded to what the measurement can support
(recall to 1e-5, times and QPS samples to 4 significant digits), one line per run so a changed
run is one changed line, and nothing that changes on every run (neighbour files,
latency lists, finish times). It keeps the same field names as results.json, so
`bench compare` reads either file the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.files import atomic_write_bytes
from bench.results import load_results, now_iso

BASELINE_FORMAT = "featbench-baseline"

_KEY_FIELDS = ("extractor", "algorithm", "label", "build_params", "query_params", "k", "mode",
               "threads", "n_queries", "metric", "status")
_SCORES = ("recall", "id_recall", "recall_p5", "hit_rate")  # fractions: 5 decimals
_TIMES = ("qps", "build_time_s", "build_cpu_s", "search_time_s", "latency_p50_ms", "latency_p99_ms")
_BYTES = ("index_bytes", "index_uss_bytes")
_ENVIRONMENT = ("python", "platform", "cpu", "cpu_count", "memory_total_bytes", "threads",
                "packages", "git_commit")


def _significant(value: float, digits: int = 4) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def compact_run(run: dict[str, Any], cpu: str | None = None) -> dict[str, Any]:
    """``cpu``: the file's CPU model; a run timed on another (a cluster node) keeps its own."""
    out = {k: run.get(k) for k in _KEY_FIELDS if k in run}
    node_cpu = (run.get("node") or {}).get("cpu") if isinstance(run.get("node"), dict) else None
    if node_cpu and node_cpu != cpu:
        out["node_cpu"] = node_cpu
    if run.get("status") != "ok":
        out["error"] = run.get("error")
        out["stage"] = run.get("stage")
    for key in _SCORES:
        if run.get(key) is not None:
            out[key] = round(float(run[key]), 5)
    for key in _TIMES:
        if run.get(key) is not None:
            out[key] = _significant(float(run[key]))
    for key in _BYTES:
        if run.get(key) is not None:
            out[key] = int(run[key])
    if run.get("samples_qps"):  # what the gate's confidence interval is computed from
        out["samples_qps"] = [_significant(float(v)) for v in run["samples_qps"]]
        if run.get("samples_cpu_qps"):
            out["samples_cpu_qps"] = [_significant(float(v)) for v in run["samples_cpu_qps"]]
        out["stable"] = run.get("stable")
    if isinstance(run.get("repeat"), dict):
        out["repeat"] = _rounded({k: v for k, v in run["repeat"].items()
                                  if k in ("n", "qps_spread", "build_spread", "failed")})
    return out


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _significant(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def compact_results(data: dict[str, Any]) -> dict[str, Any]:
    """The subset of a results.json that a future comparison needs, rounded."""
    dataset = data.get("dataset") or {}
    env = data.get("environment") or {}
    runs = sorted((compact_run(r, env.get("cpu")) for r in data.get("runs", [])), key=_sort_key)
    out: dict[str, Any] = {
        "format": BASELINE_FORMAT,
        "schema": data.get("schema", 1),
        "name": data.get("name"),
        "saved": now_iso(),
        "results_updated": data.get("updated"),
        "experiment": data.get("experiment"),
        "dataset": {k: dataset.get(k) for k in ("name", "options", "fingerprint")},
        "environment": {k: env.get(k) for k in _ENVIRONMENT if k in env},
        "runs": runs,
    }
    if isinstance(data.get("repeat"), dict):
        out["repeat"] = _rounded(data["repeat"])
    return out


def _sort_key(run: dict[str, Any]) -> tuple[Any, ...]:
    return (run.get("extractor") or "", run.get("label") or "", run["algorithm"],
            json.dumps(run.get("build_params"), sort_keys=True),
            json.dumps(run.get("query_params"), sort_keys=True), run["k"], run.get("mode", ""))


def dumps_baseline(baseline: dict[str, Any]) -> str:
    """JSON with sorted keys and one line per run (a changed run is a one-line diff)."""
    parts = []
    for key in sorted(baseline):
        value = baseline[key]
        if key == "runs":
            rows = ",\n".join("  " + json.dumps(r, sort_keys=True) for r in value)
            text = f"[\n{rows}\n ]" if rows else "[]"
        else:
            text = json.dumps(value, indent=1, sort_keys=True).replace("\n", "\n ")
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def save_baseline(spec: str | Path, path: str | Path) -> dict[str, Any]:
    """Write the compact baseline of the results named by ``spec`` to ``path``."""
    data = load_results(spec)
    if not data.get("runs"):
        raise BenchError(f"{data['_path']}: no runs to save as a baseline")
    baseline = compact_results(data)
    target = Path(path)
    atomic_write_bytes(target, dumps_baseline(baseline).encode())
    return baseline


def load_comparable(spec: str | Path) -> dict[str, Any]:
    """A results.json (path, folder or experiment name) or a baseline file."""
    data = load_results(spec)
    if not isinstance(data.get("runs"), list):
        raise BenchError(f"{data['_path']}: no 'runs' list; not a results or baseline file")
    fmt = data.get("format")
    if fmt is not None and fmt != BASELINE_FORMAT:
        raise BenchError(f"{data['_path']}: format {fmt!r} is not {BASELINE_FORMAT!r}")
    return data
