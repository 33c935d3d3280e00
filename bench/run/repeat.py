"""``bench run --repeat N``: run an experiment N times and keep per-run medians.

Within one run the harness already keeps the best of ``runs`` search repeats,
but that only removes noise shorter than one search; a neighbour job that
hogs the CPU for a minute slows a whole build and all its searches. Repeating
the *experiment* spreads such bursts over N independent measurements, and the
median ignores the worst ones. Recall does not need a median for deterministic
backends (it must come out identical, and a difference is recorded), but the
median is kept for the others too, so one file has one value per field.
Timing samples are pooled over the repeats: ``qps`` and its statistics describe
all samples together (the median of the repeats' headlines stays in ``repeat``).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.core.errors import BenchError
from bench.results import ResultsFile
from bench.run.replicas import POOLED_FIELDS, pool_timing
from bench.run.runner import RunOptions, run_experiment

#: fields that vary from one measurement to the next; the median of each is kept
TIMING_FIELDS = ("qps", "search_time_s", "latency_mean_ms", "latency_p50_ms", "latency_p95_ms",
                 "latency_p99_ms", "build_time_s", "index_uss_bytes", "peak_rss_bytes",
                 "peak_anon_bytes")
SCORE_FIELDS = ("recall", "id_recall", "recall_p5", "recall_min", "hit_rate")


def spread(values: list[float]) -> float:
    """(max - min) / median: the run-to-run spread, 0 for identical values."""
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from the N measurements of the same run (same run id)."""
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:  # a configuration that fails once is not reliable: report the failure
        merged = dict(failed[-1])
        merged["repeat"] = {"n": len(records), "failed": len(failed)}
        return merged
    merged = dict(records[-1])  # neighbours file and metadata of the last repeat
    info: dict[str, Any] = {"n": len(records)}
    pooled = all(r.get("samples_qps") for r in records)
    for key in TIMING_FIELDS:
        values = [r[key] for r in records if r.get(key) is not None]
        if len(values) == len(records):
            merged[key] = statistics.median(values)
            if key in ("qps", "build_time_s"):
                info[key] = values
                info[f"{key.removesuffix('_s').removesuffix('_time')}_spread"] = spread(values)
    if pooled:  # the statistics of every repeat's samples together (bench.run.replicas)
        timing = pool_timing(records)
        merged.update({k: timing[k] for k in POOLED_FIELDS if k in timing})
    identical = True
    for key in SCORE_FIELDS:
        values = [r[key] for r in records if r.get(key) is not None]
        if values and len(set(values)) > 1:
            identical = False
            merged[key] = statistics.median(values)
            info[f"{key}_values"] = values
    info["scores_identical"] = identical
    merged["repeat"] = info
    return merged


def run_repeated(spec: str | Path, n: int, options: RunOptions | None = None,
                 console: Console | None = None) -> ResultsFile:
    """Run ``spec`` ``n`` times (each forced) and write one results.json of medians.

    Returns the ResultsFile of the merged results; each run carries
    ``repeat: {n, qps: [...], qps_spread, build_time_s: [...], build_spread,
    scores_identical}`` and the file ``repeat: {n, qps_spread_median, qps_spread_max,
    scores_identical}``.
    """
    if n < 1:
        raise BenchError(f"--repeat must be at least 1, got {n}")
    options = options or RunOptions()
    console = console or Console(stderr=True)
    if n == 1:
        return run_experiment(spec, options, console)
    measured: dict[str, list[dict[str, Any]]] = {}
    results = None
    for i in range(n):
        console.print(f"[bold]repeat[/] {i + 1}/{n}")
        results = run_experiment(spec, replace(options, force=True), console)
        for record in results.runs:
            measured.setdefault(record["id"], []).append(record)
    assert results is not None
    merged = [merge_records(measured[r["id"]]) for r in results.runs]
    results.data["runs"] = merged
    spreads = [r["repeat"]["qps_spread"] for r in merged if "qps_spread" in r["repeat"]]
    results.data["repeat"] = {
        "n": n,
        "qps_spread_median": statistics.median(spreads) if spreads else None,
        "qps_spread_max": max(spreads) if spreads else None,
        "scores_identical": all(r["repeat"].get("scores_identical", True) for r in merged),
    }
    results.save()
    return results
