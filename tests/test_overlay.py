"""`bench process A B --overlay NAME`: one chart and one table across experiments."""

from __future__ import annotations

import csv
import os

import pytest
from click.testing import CliRunner
from conftest import small_experiment

from bench.cli.main import cli
from bench.core.errors import BenchError
from bench.process.overlay import overlay
from bench.run.runner import RunOptions, run_experiment


@pytest.fixture
def three_runs(write_experiment):
    flat = small_experiment(name="exp-flat", algorithms=[
        {"algorithm": "faiss", "name": "faiss-flat", "build": {"factory": "Flat"}}])
    ivf = small_experiment(name="exp-ivf", algorithms=[
        {"algorithm": "faiss", "name": "faiss-flat", "build": {"factory": "Flat"}},
        {"algorithm": "faiss", "name": "ivf", "build": {"factory": "IVF16,Flat"},
         "query": {"nprobe": [1, 4]}}])
    other = small_experiment(name="exp-other")
    other["dataset"] = {**other["dataset"], "n": 1500}
    for spec in (flat, ivf, other):
        run_experiment(write_experiment(spec, f"{spec['name']}.yaml"), RunOptions(progress=False))


def test_overlay_draws_every_experiment_labelled(three_runs):
    written = overlay(["exp-flat", "exp-ivf"], "both")
    names = {p.name for p in written}
    assert {"recall_qps_k10.png", "best_qps.csv", "runs.csv"} <= names
    png = next(p for p in written if p.name == "recall_qps_k10.png")
    assert png.stat().st_size > 10_000
    table = next(p for p in written if p.name == "best_qps.csv")
    rows = list(csv.DictReader(table.open()))
    series = {r["series"] for r in rows}
    # the same label in two experiments stays two series
    assert {"exp-flat / faiss-flat", "exp-ivf / faiss-flat", "exp-ivf / ivf"} <= series
    assert {r["experiment"] for r in rows} == {"exp-flat", "exp-ivf"}
    assert str(png).startswith(os.environ["BENCH_PLOTS"])


def test_overlay_refuses_mixed_datasets_unless_asked(three_runs):
    with pytest.raises(BenchError, match="exp-flat and exp-other were run on different data"):
        overlay(["exp-flat", "exp-other"], "mixed")
    assert overlay(["exp-flat", "exp-other"], "mixed", mixed_datasets=True)


def test_overlay_cli(three_runs):
    result = CliRunner().invoke(cli, ["process", "exp-flat", "exp-ivf", "--overlay", "ov"])
    assert result.exit_code == 0, result.output
    assert "recall_qps_k10.png" in result.output
    result = CliRunner().invoke(cli, ["process", "exp-flat", "exp-other", "--overlay", "ov2"])
    assert result.exit_code == 2 and "--mixed-datasets" in result.output
    result = CliRunner().invoke(cli, ["process", "exp-flat", "exp-ivf"])
    assert result.exit_code == 2 and "--overlay NAME" in result.output
    result = CliRunner().invoke(cli, ["process", "exp-flat", "exp-ivf", "--overlay", "../x"])
    assert result.exit_code == 2
