"""One definition of a run's facts: bench run's table, bench compare and the plots agree."""

from __future__ import annotations

import importlib
import io
import json
import re

from conftest import small_experiment
from rich.console import Console

from bench.gate.compare import compare_results
from bench.gate.formats import row_cells
from bench.process.frame import runs_frame
from bench.results import index_mb, index_size, load_results, record_key, run_key, score
from bench.run.runner import RunOptions, run_experiment

cli_main = importlib.import_module("bench.cli.main")


def _summary_mb(runs: list[dict], monkeypatch) -> list[str]:
    console = Console(record=True, width=300, file=io.StringIO())
    monkeypatch.setattr(cli_main, "out", console, raising=False)
    cli_main.print_summary(runs)
    text = console.export_text()
    rows = [line for line in text.splitlines() if re.search(r"\bok\b", line)]
    return [line.replace("│", " ").split()[-1] for line in rows]


def test_same_index_mb_in_run_table_compare_and_plots(write_experiment, monkeypatch):
    results = run_experiment(write_experiment(small_experiment()), RunOptions(progress=False))
    data = load_results(results.path)
    runs = [r for r in data["runs"] if r["status"] == "ok"]
    # one run with the backend's figure missing: the measured growth is used everywhere
    runs[0] = {**runs[0], "index_bytes": None, "index_uss_bytes": 3_000_000}
    data["runs"] = runs
    expected = [index_mb(r) for r in runs]
    assert expected[0] == 3.0 and all(v is not None and v > 0 for v in expected)

    assert _summary_mb(runs, monkeypatch) == [f"{v:.1f}" for v in expected]
    frame = runs_frame(data).set_index("id")
    assert [frame.loc[r["id"], "index_mb"] for r in runs] == expected
    comparison = compare_results(json.loads(json.dumps(data)), data)
    cells = {row.current["id"]: row_cells(row)[7][0] for row in comparison.rows}
    assert [cells[r["id"]] for r in runs] == [f"{v:.2f} → {v:.2f}" for v in expected]


def test_backend_figure_wins_and_noise_is_not_a_size():
    assert index_size({"index_bytes": 2e6, "index_uss_bytes": 9e6}) == ("index_bytes", 2e6)
    assert index_size({"index_bytes": None, "index_uss_bytes": -4096}) == (
        "index_uss_bytes", None)
    assert index_size({"index_anon_bytes": 5e6, "index_uss_bytes": 9e6}) == (
        "index_anon_bytes", 5e6)
    assert index_mb({"index_bytes": float("nan"), "index_uss_bytes": 1e6}) == 1.0


def test_record_key_is_the_run_key_and_includes_threads():
    run = {"extractor": None, "algorithm": "faiss", "build_params": {"factory": "Flat"},
           "query_params": {}, "k": 10, "mode": "batch", "threads": 1}
    assert record_key(run) == run_key(extractor=None, algorithm="faiss",
                                      build={"factory": "Flat"}, query={}, k=10,
                                      mode="batch", threads=1)
    assert record_key({**run, "threads": 2}) != record_key(run)


def test_score_is_hit_rate_for_identity_runs_else_recall():
    assert score({"hit_rate": 0.5, "recall": 0.9}) == 0.5
    assert score({"hit_rate": None, "recall": 0.9}) == 0.9
