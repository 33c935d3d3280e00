"""The gate's speed decision on timing samples: a change fails only when the 95 % CI of
the speed-ratio change lies wholly beyond the tolerance."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from bench.gate.baseline import compact_results
from bench.gate.compare import Tolerances, compare_results

N = 1000


def _run(label: str, qps: float, cv: float, seed: int, build: dict | None = None,
         n: int = 15) -> dict[str, Any]:
    # normal quantiles: the median is exactly ``qps`` and the spread exactly ``cv``
    z = norm.ppf((np.arange(n) + 0.5) / n)
    samples = [float(v) for v in np.random.default_rng(seed).permutation(qps * (1 + cv * z))]
    headline = sorted(samples)[(n - 1) // 2]
    return {"id": label, "extractor": None, "algorithm": "faiss", "label": label,
            "build_params": build or {"factory": label}, "query_params": {}, "k": 10,
            "mode": "batch", "threads": 1, "n_queries": N, "metric": "euclidean",
            "status": "ok", "qps": headline, "samples_qps": samples, "n_samples": n,
            "search_time_s": N / headline, "build_time_s": 1.0, "recall": 0.9}


def _file(ref_qps: float, run_qps: float, cv: float, seed: int,
          run_cv: float | None = None) -> dict[str, Any]:
    return {"name": "g", "experiment": {"name": "g"}, "dataset": {}, "environment": {},
            "runs": [_run("flat", ref_qps, cv, seed, {"factory": "Flat"}),
                     _run("ivf", run_qps, cv if run_cv is None else run_cv, seed + 1)]}


def _speed(base: dict[str, Any], cur: dict[str, Any], tol: Tolerances | None = None):
    c = compare_results(base, cur, tol or Tolerances())
    row = next(r for r in c.rows if r.name.startswith("ivf"))
    return row.check("speed")


@pytest.mark.parametrize(("change", "fails"), [(0.0, False), (-0.03, False), (-0.2, True),
                                               (+0.3, False)])
def test_clear_changes_with_tight_samples(change, fails):
    base = _file(500, 10000, 0.01, 1)
    cur = _file(400, 8000 * (1 + change), 0.01, 11)  # a machine 20 % slower as well
    check = _speed(base, cur)
    assert check.ok is not fails
    low, high = check.ci
    assert low <= check.change + 0.01 and check.change - 0.01 <= high
    assert check.change == pytest.approx(change, abs=0.02)


def test_a_drop_past_the_tolerance_passes_when_the_samples_cannot_resolve_it():
    base = _file(500, 10000, 0.01, 1)
    noisy = _file(500, 10000 * 0.88, 0.01, 21, run_cv=0.25)  # -12 %, but CV 25 %
    check = _speed(base, noisy)
    assert check.change < -0.1 and check.ok  # the CI reaches above -10 %
    assert check.ci[1] > -0.1
    tight = _file(500, 10000 * 0.88, 0.01, 21)  # -12 % with CV 1 %: resolved, fails
    assert not _speed(base, tight).ok


def test_a_tighter_tolerance_catches_a_smaller_resolved_drop():
    base = _file(500, 10000, 0.005, 1)
    cur = _file(500, 10000 * 0.93, 0.005, 31)  # -7 %
    assert _speed(base, cur).ok  # default 10 %
    check = _speed(base, cur, Tolerances(speed_ratio_drop=0.05))
    assert not check.ok and check.ci[1] < -0.05
    assert "95 % CI" in check.describe()


def test_the_baseline_file_keeps_the_samples_the_decision_needs():
    base = _file(500, 10000, 0.01, 1)
    compact = compact_results(copy.deepcopy(base))
    ivf = next(r for r in compact["runs"] if r["label"] == "ivf")
    assert len(ivf["samples_qps"]) == 15
    slower = _file(500, 8000, 0.01, 11)
    assert not _speed(compact, slower).ok
    assert _speed(compact, _file(500, 10000, 0.01, 41)).ok


def test_old_records_without_samples_compare_their_headlines():
    base, cur = _file(500, 10000, 0.01, 1), _file(500, 8500, 0.01, 2)
    for data in (base, cur):
        for r in data["runs"]:
            del r["samples_qps"]
    check = _speed(base, cur)
    assert check.ci[0] == pytest.approx(check.ci[1]) == pytest.approx(check.change)
    assert not check.ok  # -15 % beyond 10 %


def test_instruction_counter_compares_instructions_per_query_without_a_reference():
    base, cur = _file(500, 10000, 0.01, 1), _file(250, 5000, 0.2, 2)  # wall time is noise
    for data, ipq in ((base, 75_000.0), (cur, 75_000.0 * 1.015)):
        for r in data["runs"]:
            r["instructions_per_query"] = ipq
    tol = Tolerances(counter="instructions")
    c = compare_results(base, cur, tol)
    assert not c.failed and {ch.metric for ch in c.rows[1].checks} >= {"instructions"}
    assert c.rows[1].check("speed") is None  # wall-clock speed is not judged in this mode
    for r in cur["runs"]:
        r["instructions_per_query"] = 75_000.0 * 1.03  # +3 % > 2 %
    c = compare_results(base, cur, tol)
    bad = c.rows[1].check("instructions")
    assert c.failed and not bad.ok and bad.change == pytest.approx(0.03)
    assert "instructions per query: 75,000 -> 77,250" in bad.describe()
    del cur["runs"][1]["instructions_per_query"]
    missing = compare_results(base, cur, tol).rows[1].check("instructions")
    assert not missing.ok and "counter: instructions" in missing.note


def test_cpu_counter_judges_the_cpu_time_samples():
    base, cur = _file(500, 10000, 0.01, 1), _file(500, 7000, 0.01, 2)  # wall: -30 %
    for data in (base, cur):
        for r in data["runs"]:  # the process's own CPU time did not change
            r["samples_cpu_qps"] = [q * 1.5 for q in _file(500, 10000, 0.01, 3)["runs"][
                0 if r["label"] == "flat" else 1]["samples_qps"]]
    assert not _speed(base, cur).ok
    check = _speed(base, cur, Tolerances(counter="cpu"))
    assert check.ok and check.change == pytest.approx(0.0) and "CPU time" in check.note


def test_cpu_counter_normalises_the_build_by_cpu_seconds():
    base, cur = _file(500, 10000, 0.01, 1), _file(500, 10000, 0.01, 2)
    for data, wall in ((base, 2.0), (cur, 7.0)):  # wall: the build waited for the cores
        for r in data["runs"]:
            r["samples_cpu_qps"] = list(r["samples_qps"])
            r["build_time_s"], r["build_cpu_s"] = wall, 1.5
    time_build = compare_results(base, cur, Tolerances()).rows[1].check("build")
    assert not time_build.ok and time_build.change == pytest.approx(2.5)
    cpu_build = compare_results(base, cur, Tolerances(counter="cpu")).rows[1].check("build")
    assert cpu_build.ok and cpu_build.change == pytest.approx(0.0, abs=0.05)
