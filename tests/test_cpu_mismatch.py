"""`bench compare` refuses speed comparisons across CPU models unless told to."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import small_experiment

from bench.cli.main import cli
from bench.gate.baseline import compact_results
from bench.run.runner import RunOptions, run_experiment


def test_compare_refuses_runs_timed_on_another_cpu_model(write_experiment, tmp_path) -> None:
    spec = small_experiment()
    results = run_experiment(write_experiment(spec), RunOptions(progress=False))
    data = json.loads(results.path.read_text())
    cpu = data["environment"]["cpu"]
    assert all(r["node"]["cpu"] == cpu for r in data["runs"])
    same = tmp_path / "same.json"
    same.write_text(json.dumps(data))
    # one run came from a cluster node with another CPU (its record says so)
    data["runs"][1]["node"]["cpu"] = "Other CPU 9000"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    runner = CliRunner()
    ok = runner.invoke(cli, ["compare", str(results.path), str(same)])
    assert ok.exit_code == 0, ok.output
    refused = runner.invoke(cli, ["compare", str(results.path), str(other)])
    assert refused.exit_code == 2
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "Other CPU 9000" in lines[0] and "--allow-cpu-mismatch" in lines[0]
    assert "1 of 3 matched runs" in lines[0]
    allowed = runner.invoke(cli, ["compare", str(results.path), str(other),
                                  "--allow-cpu-mismatch"])
    assert allowed.exit_code == 0, allowed.output
    # a baseline keeps a node's CPU only where it differs from the file's
    compact = compact_results(data)
    assert [r.get("node_cpu") for r in compact["runs"]].count("Other CPU 9000") == 1
    assert sum("node_cpu" in r for r in compact["runs"]) == 1
    baseline = Path(tmp_path / "base.json")
    baseline.write_text(json.dumps(compact))
    again = runner.invoke(cli, ["compare", str(baseline), str(results.path)])
    assert again.exit_code == 2 and "--allow-cpu-mismatch" in again.output
