"""Instruction counting under Valgrind: the searches' own instructions, on a tiny index."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import small_experiment

from bench.algorithms import registry
from bench.run import instructions
from bench.run.runner import RunOptions, run_experiment

needs_valgrind = pytest.mark.skipif(instructions.valgrind() is None,
                                    reason="valgrind is not installed (apt-get install valgrind)")


@needs_valgrind
def test_counts_scale_with_the_queries_and_exclude_loading(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((2000, 16)).astype(np.float32)
    queries_path = tmp_path / "queries.npy"
    np.save(queries_path, rng.standard_normal((40, 16)).astype(np.float32))
    backend = registry.get("faiss")("euclidean", 16, factory="Flat")
    backend.set_threads(1)
    backend.build(data)
    counter = instructions.InstructionCounter(
        backend, metric="euclidean", dim=16, build={"factory": "Flat"},
        queries_path=str(queries_path), mode="batch")
    try:
        twenty = counter.point({}, 10, 20)
        forty = counter.point({}, 10, 40)
    finally:
        counter.close()
    # a Flat search of one query is 2000 x 16 multiply-adds and a top-10: ~10^5 instructions;
    # loading Python, numpy and faiss is ~10^8 and must not be in the figure
    assert twenty["instructions_baseline"] > 50 * twenty["instructions"] > 0
    assert 1e4 < twenty["instructions_per_query"] < 2e6
    assert 1.6 < forty["instructions"] / twenty["instructions"] < 2.4
    assert not counter.dir.exists()


@needs_valgrind
def test_experiment_records_instructions_and_unsupported_backends_refuse(write_experiment):
    spec = small_experiment(counter="instructions", runs=1, max_point_s=0.0, timeout=1800)
    spec["dataset"].update(n=500, n_queries=20)
    spec["algorithms"] = [
        {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
        {"algorithm": "usearch", "name": "usearch"},
    ]
    results = run_experiment(write_experiment(spec), RunOptions(progress=False))
    runs = {r["label"]: r for r in json.loads(results.path.read_text())["runs"]}
    flat = runs["flat"]
    assert flat["status"] == "ok" and flat["instructions_per_query"] > 0
    assert flat["counter"] == "instructions"
    refused = runs["usearch"]
    assert refused["status"] == "failed" and refused["stage"] == "instructions"
    assert "cannot save its index" in refused["error"] and "\n" not in refused["error"]


def test_without_valgrind_the_counter_says_so(monkeypatch):
    monkeypatch.setattr(instructions, "valgrind", lambda: None)
    with pytest.raises(instructions.BenchError, match="needs valgrind"):
        instructions.require_valgrind()
