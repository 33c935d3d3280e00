"""Regression gate between two results: match runs, normalise speed, apply tolerances.

Shared CI machines differ in speed by tens of percent from one job to the next,
so raw QPS and build seconds cannot be compared across two files. Every speed
figure is therefore divided by a *reference run measured in the same file*
(by default exact Faiss ``Flat`` search): a machine that is uniformly 1.5x
slower leaves every ratio unchanged, while a backend that became slower than
the rest of the experiment moves its ratio and fails the gate.

- speed ratio  = QPS of the run / QPS of the reference (same extractor, k, mode);
- build ratio  = build seconds / the reference's *search* seconds. The reference's
  own build (a memory copy for Flat) is too short and too memory-bound to be a
  yardstick, while its batch search is a steady, compute-bound measurement;
- recall is compared as an absolute difference, memory as a relative change.

A build or USS memory change only fails when it is also larger in absolute terms
than a floor (``min_build_s``, ``min_memory_bytes``): a 5 ms build that takes
10 ms on a busy machine is noise, not a 100 % regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.config.compare import Tolerances
from bench.core.errors import BenchError
from bench.core.options import validate_section
from bench.gate.checks import (
    _EPS,
    Check,
    _instructions_check,
    _speed_check,
    build_seconds,
    headline_qps,
    search_seconds,
)
from bench.results.record import index_size, record_key, run_name, score

#: algorithm/build combinations recognised as exact search when no reference is named
_DEFAULT_REFERENCES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("faiss", {"factory": "Flat"}),
    ("bruteforce", {}),
)
NO_REFERENCE = "none"  # compare raw QPS and build seconds (a dedicated, quiet machine)


def resolve_tolerances(
    baseline: dict[str, Any], current: dict[str, Any], overrides: dict[str, Any] | None = None
) -> Tolerances:
    """Defaults, then the baseline's ``compare:`` section, then the current one, then
    the command line: the experiment under review may tighten or loosen its own gate,
    which shows up in the pull request's diff."""
    merged: dict[str, Any] = {}
    for data, where in ((baseline, "baseline"), (current, "current")):
        section = (data.get("experiment") or {}).get("compare") or {}
        if not isinstance(section, dict):
            raise BenchError(f"{data.get('_path', where)}: experiment.compare: expected a mapping")
        merged.update({k: v for k, v in section.items() if v is not None})
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_section(Tolerances, merged, "compare tolerances")


def _is_reference(run: dict[str, Any], reference: str | None) -> bool:
    if reference is not None:
        return run.get("label") == reference or run["algorithm"] == reference
    build = run.get("build_params") or {}
    return any(run["algorithm"] == algo and all(build.get(k) == v for k, v in want.items())
               for algo, want in _DEFAULT_REFERENCES)


def reference_runs(
    data: dict[str, Any], reference: str | None, where: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The reference run of every (extractor, k, mode) group of one results file."""
    if reference == NO_REFERENCE:
        return {}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in data.get("runs", []):
        if _is_reference(run, reference):
            groups.setdefault(reference_group(run), []).append(run)
    if not groups:
        what = f"no run labelled or named {reference!r}" if reference else (
            "no exact reference run (faiss with factory Flat, or bruteforce)")
        raise BenchError(
            f"{where}: {what}; add one to the experiment, or set compare.reference / "
            f"--reference to a run label (or 'none' to compare raw figures)"
        )
    out = {}
    for group, runs in groups.items():
        if len({record_key(r) for r in runs}) > 1:
            raise BenchError(
                f"{where}: reference {reference or 'faiss Flat'!r} matches {len(runs)} runs "
                f"with k={group[1]}, mode={group[2]}; name a run label with one configuration"
            )
        out[group] = runs[0]
    return out


def reference_group(run: dict[str, Any]) -> tuple[Any, ...]:
    """The runs that share one reference run: same extractor, k and mode."""
    return (run.get("extractor"), run["k"], run.get("mode", "batch"))


@dataclass
class RunComparison:
    name: str
    verdict: str  # pass | fail | missing | new | skipped
    baseline: dict[str, Any] | None
    current: dict[str, Any] | None
    checks: list[Check] = field(default_factory=list)
    is_reference: bool = False

    @property
    def failed(self) -> bool:
        return self.verdict in ("fail", "missing")

    def check(self, metric: str) -> Check | None:
        return next((c for c in self.checks if c.metric == metric), None)

    def problems(self) -> list[str]:
        return [c.describe() for c in self.checks if not c.ok]


@dataclass
class Comparison:
    baseline_name: str
    current_name: str
    tolerances: Tolerances
    rows: list[RunComparison]
    warnings: list[str] = field(default_factory=list)
    machine_factor: float | None = None  # current reference QPS / baseline reference QPS

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.rows)

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)


def _ok(run: dict[str, Any] | None) -> bool:
    return run is not None and run.get("status") == "ok"


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0 or not math.isfinite(num):
        return None
    return num / den


def _speed_and_build(
    run: dict[str, Any], ref: dict[str, Any] | None, raw: bool, counter: str = "time"
) -> tuple[float | None, float | None]:
    if raw:
        return headline_qps(run, counter), build_seconds(run, counter)
    if not _ok(ref):
        return None, None
    assert ref is not None
    return (_ratio(headline_qps(run, counter), headline_qps(ref, counter)),
            _ratio(build_seconds(run, counter), search_seconds(ref, counter)))


def _memory(base: dict[str, Any], cur: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """Both runs' index size as results.record.index_size chooses it, from the same field.

    When the two chose different fields (one backend reported its size, the other did
    not), the measured figure of both is compared rather than a mix of the two.
    """
    which, b_size = index_size(base)
    c_which, c_size = index_size(cur)
    if which == c_which:
        return which, b_size, c_size
    return "index_uss_bytes", base.get("index_uss_bytes"), cur.get("index_uss_bytes")


def check_run(
    base: dict[str, Any], cur: dict[str, Any], base_ref: dict[str, Any] | None,
    cur_ref: dict[str, Any] | None, tol: Tolerances,
) -> list[Check]:
    """Every tolerance for one matched pair whose baseline run succeeded."""
    if not _ok(cur):
        return [Check("status", False, note=f"{cur.get('status')} at {cur.get('stage', '?')}: "
                                             f"{cur.get('error') or 'no message'}")]
    checks = []
    b_score, c_score = score(base), score(cur)
    if b_score is not None and c_score is not None:
        change = c_score - b_score
        checks.append(Check("recall", change >= -tol.recall_drop - _EPS, b_score, c_score,
                            change, tol.recall_drop))
    raw = tol.reference == NO_REFERENCE
    b_speed, b_build = _speed_and_build(base, base_ref, raw, tol.counter)
    c_speed, c_build = _speed_and_build(cur, cur_ref, raw, tol.counter)
    if tol.counter == "instructions":
        checks.append(_instructions_check(base, cur, tol))
    elif not raw and not _ok(cur_ref):
        checks.append(Check("speed", False, note="the reference run failed or is missing in "
                                                 "the current results"))
    elif b_speed and c_speed is not None:
        checks.append(_speed_check(base, cur, base_ref, cur_ref, tol, raw, b_speed, c_speed))
    elif not b_speed:
        checks.append(Check("speed", True, note="not checked: no baseline speed (its reference "
                                                "run failed)"))
    if b_build is not None and c_build is not None and b_build > 0:
        change = c_build / b_build - 1
        # the baseline's build, in seconds of this machine
        ref_s = None if raw else search_seconds(cur_ref, tol.counter)  # type: ignore[arg-type]
        expected_s = b_build if raw else b_build * (ref_s or 0.0)
        excess_s = (build_seconds(cur, tol.counter) or 0.0) - expected_s
        within = change <= tol.build_ratio_rise + _EPS
        note = "(raw seconds)" if raw else ""
        if not within and excess_s <= tol.min_build_s:
            note += " (below min_build_s)"
        checks.append(Check("build", within or excess_s <= tol.min_build_s, b_build, c_build,
                            change, tol.build_ratio_rise, note.strip()))
    which, b_mem, c_mem = _memory(base, cur)
    if b_mem is not None and c_mem is not None and b_mem > 0:
        change = c_mem / b_mem - 1
        floor = tol.min_memory_bytes if which != "index_bytes" else 0
        within = change <= tol.memory_rise + _EPS
        note = "" if which == "index_bytes" else "(USS)"
        if not within and c_mem - b_mem <= floor:
            note += " (below min_memory_bytes)"
        checks.append(Check("memory", within or c_mem - b_mem <= floor, b_mem, c_mem, change,
                            tol.memory_rise, note.strip()))
    return checks


def compare_results(
    baseline: dict[str, Any], current: dict[str, Any], tolerances: Tolerances | None = None
) -> Comparison:
    """Match the runs of two results (or baseline) dicts and apply the tolerances."""
    tol = tolerances or resolve_tolerances(baseline, current)
    b_where = baseline.get("_path") or baseline.get("name", "baseline")
    c_where = current.get("_path") or current.get("name", "current")
    b_refs = reference_runs(baseline, tol.reference, f"baseline {b_where}")
    c_refs = reference_runs(current, tol.reference, f"current {c_where}")
    b_runs = _index(baseline, b_where)
    c_runs = _index(current, c_where)
    ref_keys = {record_key(r) for r in (*b_refs.values(), *c_refs.values())}
    rows = []
    for key, base in b_runs.items():
        cur = c_runs.get(key)
        row = RunComparison(run_name(base), "pass", base, cur, is_reference=key in ref_keys)
        if not _ok(base):
            row.verdict = "skipped"
        elif cur is None:
            row.verdict = "missing"
        else:
            row.checks = check_run(base, cur, b_refs.get(reference_group(base)),
                                   c_refs.get(reference_group(cur)), tol)
            row.verdict = "pass" if all(c.ok for c in row.checks) else "fail"
        rows.append(row)
    for key, cur in c_runs.items():
        if key not in b_runs:
            rows.append(RunComparison(run_name(cur), "new", None, cur,
                                      is_reference=key in ref_keys))
    comparison = Comparison(str(b_where), str(c_where), tol, rows,
                            warnings=_warnings(baseline, current))
    comparison.machine_factor = _machine_factor(b_refs, c_refs)
    return comparison


def run_cpu(run: dict[str, Any], data: dict[str, Any]) -> str | None:
    """The CPU model a run was timed on: its node's (a cluster run), else the file's."""
    node = run.get("node") if isinstance(run.get("node"), dict) else {}
    env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    return node.get("cpu") or run.get("node_cpu") or env.get("cpu")


def cpu_mismatch(baseline: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why the speed of matched runs is not comparable (different CPU models), or None.

    Normalising by a reference run absorbs a uniformly faster machine, not a different
    microarchitecture: SIMD width and cache sizes move backends by different factors."""
    def runs(data: dict[str, Any]) -> list[dict[str, Any]]:
        found = data.get("runs")
        return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []

    try:
        base = {record_key(r): run_cpu(r, baseline) for r in runs(baseline)}
        pairs = [(base[record_key(r)], run_cpu(r, current)) for r in runs(current)
                 if record_key(r) in base]
    except (KeyError, TypeError):
        return None  # malformed runs: _index reports them with their position
    differ = [(b, c) for b, c in pairs if b and c and b != c]
    if not differ:
        return None
    b, c = differ[0]
    return (f"baseline runs were timed on {b!r}, current ones on {c!r} "
            f"({len(differ)} of {len(pairs)} matched runs)")


def _index(data: dict[str, Any], where: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise BenchError(f"{where}: no 'runs' list; not a featbench results or baseline file")
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, run in enumerate(runs):
        try:
            key = record_key(run)
        except (KeyError, TypeError):
            raise BenchError(f"{where}: runs.{i}: expected algorithm and k fields") from None
        out[key] = run
    return out


def _machine_factor(b_refs: dict[Any, Any], c_refs: dict[Any, Any]) -> float | None:
    """How much faster the current machine ran the reference (informational)."""
    factors = [c["qps"] / b["qps"] for g, b in b_refs.items()
               if (c := c_refs.get(g)) and _ok(b) and _ok(c) and b.get("qps")]
    if not factors:
        return None
    factors.sort()
    return factors[len(factors) // 2]


def _warnings(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Differences that make a comparison less meaningful without making it wrong."""
    out = []
    b_ds, c_ds = baseline.get("dataset") or {}, current.get("dataset") or {}
    if b_ds.get("fingerprint") and c_ds.get("fingerprint") and (
            b_ds["fingerprint"] != c_ds["fingerprint"]):
        out.append(f"dataset fingerprints differ ({b_ds['fingerprint'][:12]} vs "
                   f"{c_ds['fingerprint'][:12]}): the data changed, recall may move for that "
                   "reason alone")
    b_env, c_env = baseline.get("environment") or {}, current.get("environment") or {}
    for key, what in (("cpu", "CPU"), ("threads", "thread count")):
        if b_env.get(key) and c_env.get(key) and b_env[key] != c_env[key]:
            out.append(f"different {what}: {b_env[key]} vs {c_env[key]}; speed ratios remain "
                       "comparable only approximately")
    b_pk, c_pk = b_env.get("packages") or {}, c_env.get("packages") or {}
    changed = [f"{p} {b_pk[p]} -> {c_pk[p]}" for p in sorted(b_pk)
               if p in c_pk and b_pk[p] != c_pk[p] and p != "featbench"]
    if changed:
        out.append("package versions changed: " + ", ".join(changed))
    return out
