"""The regression gate: matching, normalised speed, tolerances, baselines, report formats,
and end to end on real runs (a backend slowed by an injected sleep must fail)."""

from __future__ import annotations

import copy
import json
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import small_experiment
from plugins_for_tests import SlowSearch

from bench.cli.compare import baseline as baseline_group
from bench.cli.compare import compare as compare_cmd
from bench.cli.main import BenchGroup
from bench.core.errors import BenchError
from bench.gate.baseline import compact_results, dumps_baseline, load_comparable, save_baseline
from bench.gate.compare import Tolerances, compare_results, resolve_tolerances
from bench.gate.formats import to_junit, to_markdown
from bench.run.repeat import merge_records, run_repeated
from bench.run.runner import RunOptions, run_experiment

N_QUERIES = 1000


# --------------------------------------------------------------------------- helpers


def _run(label: str, *, algorithm: str = "faiss", build: dict | None = None,
         query: dict | None = None, k: int = 10, qps: float = 1000.0, build_s: float = 1.0,
         recall: float = 0.9, index_bytes: int | None = 10_000_000,
         uss: int = 12_000_000, status: str = "ok") -> dict[str, Any]:
    run = {"id": f"{label}-{json.dumps(query)}-{k}", "extractor": None, "algorithm": algorithm,
           "label": label, "build_params": build or {}, "query_params": query or {}, "k": k,
           "mode": "batch", "threads": 1, "n_queries": N_QUERIES, "metric": "euclidean",
           "status": status}
    if status != "ok":
        return {**run, "error": "boom", "stage": "build"}
    return {**run, "qps": qps, "search_time_s": N_QUERIES / qps, "build_time_s": build_s,
            "latency_p50_ms": 1e3 / qps, "recall": recall, "id_recall": recall,
            "index_bytes": index_bytes, "index_uss_bytes": uss, "error": None}


def _results(runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"schema": 1, "name": "gate", "experiment": {"name": "gate"},
            "dataset": {"name": "synthetic", "fingerprint": "f" * 32},
            "environment": {"cpu": "test cpu", "threads": 1, "packages": {"faiss-cpu": "1.8"}},
            "runs": runs, **extra}


def _baseline() -> dict[str, Any]:
    return _results([
        _run("flat", build={"factory": "Flat"}, qps=500, build_s=0.01, recall=1.0),
        _run("ivf", build={"factory": "IVF64,Flat"}, query={"nprobe": 1}, qps=20000,
             build_s=0.5, recall=0.62),
        _run("ivf", build={"factory": "IVF64,Flat"}, query={"nprobe": 8}, qps=5000,
             build_s=0.5, recall=0.95),
        _run("hnsw", algorithm="hnswlib", build={"M": 16}, query={"ef": 40}, qps=8000,
             build_s=3.0, recall=0.97, index_bytes=None, uss=40_000_000),
    ])


def _scaled(data: dict[str, Any], factor: float) -> dict[str, Any]:
    """Every time multiplied by ``factor``: the same code on a slower machine."""
    out = copy.deepcopy(data)
    for r in out["runs"]:
        if r.get("status") != "ok":
            continue
        r["qps"] /= factor
        if r.get("samples_qps"):
            r["samples_qps"] = [q / factor for q in r["samples_qps"]]
        for key in ("search_time_s", "build_time_s", "latency_mean_ms", "latency_p50_ms",
                    "latency_p95_ms", "latency_p99_ms"):
            if r.get(key) is not None:
                r[key] *= factor
    return out


def _find(data: dict[str, Any], label: str, **query: Any) -> dict[str, Any]:
    return next(r for r in data["runs"] if r["label"] == label
                and all(r["query_params"].get(k) == v for k, v in query.items()))


def _verdicts(comparison) -> dict[str, str]:
    return {row.name: row.verdict for row in comparison.rows}


# --------------------------------------------------------------------------- unit: the gate


def test_identical_results_pass_and_every_run_is_checked():
    c = compare_results(_baseline(), _baseline())
    assert not c.failed
    assert [r.verdict for r in c.rows] == ["pass"] * 4
    hnsw = next(r for r in c.rows if r.name.startswith("hnsw"))
    assert {ch.metric for ch in hnsw.checks} == {"recall", "speed", "build", "memory"}


@pytest.mark.parametrize("factor", [1.5, 0.4, 3.0])
def test_uniformly_slower_or_faster_machine_passes(factor):
    c = compare_results(_baseline(), _scaled(_baseline(), factor))
    assert not c.failed, [r.problems() for r in c.rows]
    speed = next(r for r in c.rows if r.name.startswith("ivf IVF64,Flat nprobe=8")).check("speed")
    assert speed.change == pytest.approx(0.0, abs=1e-9)
    assert c.machine_factor == pytest.approx(1 / factor)


def test_one_backend_slower_than_the_rest_fails_on_speed_only_for_that_run():
    current = _scaled(_baseline(), 1.5)  # a slower machine on top of the regression
    _find(current, "ivf", nprobe=8)["qps"] /= 3  # 1/3 = -67 % > the default 60 %
    c = compare_results(_baseline(), current)
    assert c.failed
    failed = [r for r in c.rows if r.failed]
    assert [r.name for r in failed] == ["ivf IVF64,Flat nprobe=8 k=10 batch"]
    speed = failed[0].check("speed")
    assert not speed.ok and speed.change == pytest.approx(1 / 3 - 1)
    assert failed[0].check("recall").ok


def test_speed_tolerance_is_a_relative_drop_of_the_ratio():
    tight = Tolerances(speed_ratio_drop=0.25)
    current = _scaled(_baseline(), 1.5)
    _find(current, "ivf", nprobe=8)["qps"] *= 0.8  # -20 %
    assert not compare_results(_baseline(), current, tight).failed
    _find(current, "ivf", nprobe=8)["qps"] *= 0.9  # -28 %
    assert compare_results(_baseline(), current, tight).failed
    assert compare_results(_baseline(), current).failed  # beyond the default 10 %


def test_recall_drop_of_001_fails_and_0004_passes():
    current = _baseline()
    _find(current, "ivf", nprobe=8)["recall"] -= 0.01
    c = compare_results(_baseline(), current)
    assert c.failed
    recall = next(r for r in c.rows if r.failed).check("recall")
    assert not recall.ok and recall.change == pytest.approx(-0.01)
    current = _baseline()
    _find(current, "ivf", nprobe=8)["recall"] -= 0.004
    _find(current, "ivf", nprobe=1)["recall"] += 0.05  # improvements never fail
    assert not compare_results(_baseline(), current).failed


def test_hit_rate_is_the_score_for_identity_relevance():
    base = _baseline()
    for r in base["runs"]:
        r["hit_rate"] = 0.8
    current = copy.deepcopy(base)
    _find(current, "hnsw")["hit_rate"] = 0.78
    _find(current, "hnsw")["recall"] = 0.0  # knn recall is not the score here
    c = compare_results(base, current)
    assert [r.name for r in c.rows if r.failed] == ["hnsw M=16 ef=40 k=10 batch"]
    assert c.rows[3].check("recall").change == pytest.approx(-0.02)


def test_memory_rise_uses_index_bytes_and_a_floor_for_uss():
    current = _baseline()
    _find(current, "ivf", nprobe=1)["index_bytes"] = 12_000_000  # +20 %
    _find(current, "ivf", nprobe=8)["index_bytes"] = 10_500_000  # +5 %
    _find(current, "hnsw")["index_uss_bytes"] = 40_000_000 + 900_000  # below 1 MiB floor
    c = compare_results(_baseline(), current)
    assert [r.name for r in c.rows if r.failed] == ["ivf IVF64,Flat nprobe=1 k=10 batch"]
    _find(current, "hnsw")["index_uss_bytes"] = 60_000_000  # +50 %, 20 MB
    c = compare_results(_baseline(), current)
    assert not next(r for r in c.rows if r.name.startswith("hnsw")).check("memory").ok


def test_build_rise_needs_both_relative_and_absolute_excess():
    current = _baseline()
    _find(current, "flat")["build_time_s"] = 0.04  # +300 % of a 10 ms build: noise
    hnsw = _find(current, "hnsw")
    hnsw["build_time_s"] = 3.0 * 1.9  # +90 % < 100 %
    assert not compare_results(_baseline(), current).failed
    hnsw["build_time_s"] = 3.0 * 2.5  # +150 %, 4.5 s
    c = compare_results(_baseline(), current)
    bad = [r for r in c.rows if r.failed]
    assert len(bad) == 1 and not bad[0].check("build").ok


def test_build_time_is_normalised_by_the_reference_search_time():
    current = _scaled(_baseline(), 2.0)
    _find(current, "hnsw")["build_time_s"] = 3.0  # not slower in seconds, but on a 2x
    # slower machine it should have taken 6 s: a real improvement, not a regression
    c = compare_results(_baseline(), current)
    assert not c.failed
    assert next(r for r in c.rows if r.name.startswith("hnsw")).check("build").change == (
        pytest.approx(-0.5))


def test_missing_failed_new_and_skipped_runs():
    base = _baseline()
    base["runs"].append(_run("broken", algorithm="annoy", status="failed"))
    current = _baseline()
    current["runs"] = [r for r in current["runs"] if r["label"] != "hnsw"]
    current["runs"].append(_run("usearch", algorithm="usearch"))
    _find(current, "ivf", nprobe=1).update(status="timeout", error="took too long")
    c = compare_results(base, current)
    v = _verdicts(c)
    assert v["hnsw M=16 ef=40 k=10 batch"] == "missing"
    assert v["ivf IVF64,Flat nprobe=1 k=10 batch"] == "fail"
    assert v["broken k=10 batch"] == "skipped"
    assert v["usearch k=10 batch"] == "new"
    assert c.failed and c.count("missing") == 1
    status = next(r for r in c.rows if r.verdict == "fail").check("status")
    assert "timeout" in status.note and "took too long" in status.note


def test_failed_reference_fails_the_speed_checks():
    current = _baseline()
    _find(current, "flat").update(status="crashed", error="SIGSEGV")
    c = compare_results(_baseline(), current)
    assert c.count("fail") == 4
    ivf = next(r for r in c.rows if r.name.startswith("ivf IVF64,Flat nprobe=1"))
    assert "reference run failed" in ivf.check("speed").note


def test_named_reference_and_raw_comparison():
    base = _baseline()
    current = _scaled(base, 3.0)
    tol = Tolerances(reference="ivf")
    with pytest.raises(BenchError, match="matches 2 runs"):
        compare_results(base, current, tol)
    tol = Tolerances(reference="hnswlib")
    assert not compare_results(base, current, tol).failed
    raw = compare_results(base, current, Tolerances(reference="none"))
    assert raw.failed  # raw QPS dropped by two thirds on the slower machine
    no_flat = _results([r for r in base["runs"] if r["label"] != "flat"])
    with pytest.raises(BenchError, match="no exact reference run"):
        compare_results(no_flat, no_flat)


def test_tolerances_from_experiment_sections_then_overrides():
    base = _baseline()
    current = _baseline()
    base["experiment"]["compare"] = {"recall_drop": 0.02, "memory_rise": 0.3}
    current["experiment"]["compare"] = {"recall_drop": 0.01}
    tol = resolve_tolerances(base, current)
    assert (tol.recall_drop, tol.memory_rise) == (0.01, 0.3)
    assert tol.speed_ratio_drop == Tolerances().speed_ratio_drop
    tol = resolve_tolerances(base, current, {"recall_drop": 0.001, "memory_rise": None})
    assert (tol.recall_drop, tol.memory_rise) == (0.001, 0.3)
    current["experiment"]["compare"] = {"speed_ratio_drop": 1.5}
    with pytest.raises(BenchError, match="speed_ratio_drop"):
        resolve_tolerances(base, current)
    current["experiment"]["compare"] = {"recal_drop": 0.1}
    with pytest.raises(BenchError, match="recal_drop"):
        resolve_tolerances(base, current)


def test_runs_match_by_parameters_k_and_mode_not_by_order_or_id():
    base = _baseline()
    current = _baseline()
    current["runs"].reverse()
    for r in current["runs"]:
        r["id"] = "x" + r["id"]
    assert not compare_results(base, current).failed
    current = _baseline()
    _find(current, "ivf", nprobe=8)["k"] = 1
    v = _verdicts(compare_results(base, current))
    assert v["ivf IVF64,Flat nprobe=8 k=10 batch"] == "missing"
    assert v["ivf IVF64,Flat nprobe=8 k=1 batch"] == "new"


def test_warnings_for_changed_dataset_cpu_and_packages():
    current = _baseline()
    current["dataset"]["fingerprint"] = "0" * 32
    current["environment"]["cpu"] = "another cpu"
    current["environment"]["packages"]["faiss-cpu"] = "1.9"
    text = " ".join(compare_results(_baseline(), current).warnings)
    assert "dataset fingerprints differ" in text and "another cpu" in text
    assert "faiss-cpu 1.8 -> 1.9" in text


# --------------------------------------------------------------------------- formats


def test_markdown_and_junit_show_each_run_and_the_broken_tolerance():
    current = _baseline()
    _find(current, "ivf", nprobe=8)["recall"] -= 0.01
    current["runs"] = [r for r in current["runs"] if r["label"] != "hnsw"]
    c = compare_results(_baseline(), current)
    md = to_markdown(c)
    assert "FAIL" in md and "2 regressed" in md
    assert "**ivf IVF64,Flat nprobe=8 k=10 batch**: recall: 0.9500 -> 0.9400" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4  # header + one row per run
    assert "**-0.0100**" in table[3]
    root = ET.fromstring(to_junit(c))
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["ivf IVF64,Flat nprobe=8 k=10 batch"].find("failure").get("type") == "regression"
    assert "recall" in cases["ivf IVF64,Flat nprobe=8 k=10 batch"].find("failure").get("message")
    assert cases["hnsw M=16 ef=40 k=10 batch"].find("failure").get("type") == "missing"
    assert cases["flat Flat k=10 batch"].find("failure") is None


# --------------------------------------------------------------------------- baselines


def test_baseline_is_compact_sorted_rounded_and_one_line_per_run(tmp_path):
    data = _baseline()
    data["runs"][1]["recall"] = 0.6212345678
    data["runs"][1]["qps"] = 20012.3456
    data["runs"][1]["repeats_s"] = [0.1, 0.2]
    text = dumps_baseline(compact_results(data))
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed)
    run_lines = [line for line in text.splitlines() if line.startswith('  {"algorithm"')]
    assert len(run_lines) == 4
    ivf = next(r for r in parsed["runs"] if r["query_params"] == {"nprobe": 1})
    assert ivf["recall"] == 0.62123 and ivf["qps"] == 20010.0
    assert "repeats_s" not in ivf and "id" not in ivf
    assert parsed["environment"]["cpu"] == "test cpu" and parsed["format"] == (
        "featbench-baseline")
    assert not compare_results(parsed, data).failed


# --------------------------------------------------------------------------- end to end


class FileDelaySearch(SlowSearch):
    """SlowSearch whose delay is read from a file: the build parameters (and so the
    run's identity) stay the same while the backend gets slower."""

    def __init__(self, metric: str, dim: int, *, delay_file: str = "") -> None:
        delay = float(Path(delay_file).read_text()) if delay_file else 0.0
        super().__init__(metric, dim, delay_s=delay)


def _gate_experiment(delay_file: Path) -> dict[str, Any]:
    spec = small_experiment(name="gate")
    spec["algorithms"].append({"algorithm": "test_compare:FileDelaySearch", "name": "slowable",
                               "build": {"delay_file": str(delay_file)}})
    return spec


def _cli() -> click.Group:
    group = BenchGroup(name="bench")
    group.add_command(compare_cmd)
    group.add_command(baseline_group)
    return group


def test_end_to_end_slowed_backend_fails_scaled_times_pass_recall_drop_fails(
        write_experiment, tmp_path):
    delay_file = tmp_path / "delay.txt"
    delay_file.write_text("0")
    path = write_experiment(_gate_experiment(delay_file))
    run_experiment(path, RunOptions(progress=False))
    cli = _cli()
    base_file = tmp_path / "baseline.json"
    res = CliRunner().invoke(cli, ["baseline", "save", "gate", str(base_file)])
    assert res.exit_code == 0, res.output
    baseline = load_comparable(base_file)
    assert baseline["format"] == "featbench-baseline" and len(baseline["runs"]) == 4
    assert all(r["status"] == "ok" for r in baseline["runs"])
    results_json = Path(load_comparable("gate")["_path"])

    # the same results on a machine 1.5x slower pass
    scaled = tmp_path / "scaled.json"
    scaled.write_text(json.dumps(_scaled(json.loads(results_json.read_text()), 1.5)))
    res = CliRunner().invoke(cli, ["compare", str(base_file), str(scaled)])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output

    # a recall drop of 0.01 fails
    dropped = json.loads(results_json.read_text())
    next(r for r in dropped["runs"] if r["label"] == "ivf")["recall"] -= 0.01
    (tmp_path / "dropped.json").write_text(json.dumps(dropped))
    junit = tmp_path / "junit.xml"
    res = CliRunner().invoke(cli, ["compare", str(base_file), str(tmp_path / "dropped.json"),
                                   "--junit", str(junit)])
    assert res.exit_code == 1, res.output
    failures = [c for c in ET.parse(junit).iter("testcase") if c.find("failure") is not None]
    assert len(failures) == 1 and "recall" in failures[0].find("failure").get("message")

    # the backend slowed by an injected sleep fails on speed. The sleep is 100x or more
    # its search time, so no jitter of the (millisecond) reference on a busy machine can
    # hide it; the other runs of this tiny experiment are too short to assert anything on
    delay_file.write_text("1.0")
    run_experiment(path, RunOptions(progress=False, force=True))
    md = tmp_path / "report.md"
    res = CliRunner().invoke(cli, ["compare", str(base_file), "gate", "--markdown", str(md)])
    assert res.exit_code == 1, res.output
    c = compare_results(baseline, load_comparable("gate"))
    slowed = next(r for r in c.rows if r.name.startswith("slowable delay_file="))
    assert slowed.verdict == "fail"
    assert not slowed.check("speed").ok and slowed.check("recall").ok
    assert slowed.check("speed").change < -0.5
    assert f"**{slowed.name}**: speed ratio" in md.read_text()


def test_cli_bad_input_is_one_line_with_exit_2(tmp_path):
    res = CliRunner().invoke(_cli(), ["compare", str(tmp_path / "nope.json"), "nothing"])
    assert res.exit_code == 2
    assert "results file not found" in res.output
    (tmp_path / "a.json").write_text(json.dumps(_baseline()))
    res = CliRunner().invoke(_cli(), ["compare", str(tmp_path / "a.json"),
                                      str(tmp_path / "a.json"), "--recall-drop", "-1"])
    assert res.exit_code == 2 and "recall_drop" in res.output


def test_repeat_keeps_medians_and_identical_recall(write_experiment):
    spec = small_experiment(name="rep", runs=3, max_point_s=0.0)
    spec["algorithms"] = spec["algorithms"][:2]
    spec["algorithms"][1]["query"] = {"nprobe": 4}
    results = run_repeated(write_experiment(spec), 3, RunOptions(progress=False))
    data = json.loads(results.path.read_text())
    assert data["repeat"]["n"] == 3 and data["repeat"]["scores_identical"] is True
    assert len(data["runs"]) == 2
    for r in data["runs"]:
        info = r["repeat"]
        assert len(info["qps"]) == 3
        # the samples of the three repeats are pooled: the headline is their median sample
        assert r["n_samples"] == len(r["samples_qps"]) == 3 * spec["runs"]
        assert r["qps"] == statistics.median_low(r["samples_qps"])
        assert r["build_time_s"] == statistics.median(info["build_time_s"])
        assert info["scores_identical"] is True


def test_merge_records_flags_differing_recall_and_failures():
    a, b, c = (_run("hnsw", qps=q, recall=rc) for q, rc in ((900, 0.9), (1000, 0.91),
                                                           (1100, 0.9)))
    merged = merge_records([a, b, c])
    assert merged["qps"] == 1000 and merged["recall"] == 0.9
    assert merged["repeat"]["scores_identical"] is False
    assert merged["repeat"]["qps_spread"] == pytest.approx(0.2)
    failed = merge_records([a, _run("hnsw", status="timeout"), c])
    assert failed["status"] == "timeout" and failed["repeat"] == {"n": 3, "failed": 1}


def test_save_baseline_refuses_empty_results(tmp_path):
    (tmp_path / "empty.json").write_text(json.dumps(_results([])))
    with pytest.raises(BenchError, match="no runs"):
        save_baseline(tmp_path / "empty.json", tmp_path / "b.json")
