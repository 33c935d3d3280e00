"""End-to-end behaviour of `bench run` on small synthetic data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import small_experiment

from bench.cli.main import cli
from bench.config.experiment import builtin_experiments, load_experiment
from bench.run.runner import RunOptions, run_experiment


def _run(path: Path, **kw) -> dict:
    results = run_experiment(path, RunOptions(progress=False, **kw))
    return json.loads(results.path.read_text())


def test_small_experiment_records_every_run(write_experiment):
    data = _run(write_experiment(small_experiment()))
    runs = data["runs"]
    assert len(runs) == 3
    assert all(r["status"] == "ok" for r in runs), [r.get("error") for r in runs]
    flat = next(r for r in runs if r["label"] == "flat")
    assert flat["recall"] == 1.0 and flat["id_recall"] == 1.0
    ivf = {r["query_params"]["nprobe"]: r for r in runs if r["label"] == "ivf"}
    assert ivf[1]["recall"] <= ivf[4]["recall"] <= 1.0
    for r in runs:
        assert r["qps"] > 0 and r["build_time_s"] >= 0
        assert r["latency_p50_ms"] > 0 and r["peak_rss_bytes"] > 0
    assert data["schema"] == 1
    assert data["environment"]["cpu"]
    assert data["dataset"]["fingerprint"]
    assert data["experiment"]["seed"] == 7


def test_neighbors_saved_beside_results(write_experiment, isolated_outputs):
    data = _run(write_experiment(small_experiment()))
    folder = isolated_outputs / "results" / "small"
    for r in data["runs"]:
        ids = np.load(folder / r["neighbors_file"])
        assert ids.shape == (100, 10) and ids.dtype == np.int64


def test_rerun_skips_finished_runs_and_force_redoes(write_experiment):
    path = write_experiment(small_experiment())
    first = _run(path)
    second = _run(path)
    assert [r["finished"] for r in first["runs"]] == [r["finished"] for r in second["runs"]]
    assert len(second["runs"]) == 3
    third = _run(path, force=True)
    assert len(third["runs"]) == 3


def test_crash_and_timeout_are_recorded_and_others_complete(write_experiment):
    spec = small_experiment(timeout=3)
    spec["algorithms"] += [
        {"algorithm": "plugins_for_tests:Crasher"},
        {"algorithm": "plugins_for_tests:Sleeper", "build": {"seconds": 60}},
        {"algorithm": "faiss", "name": "bad", "build": {"factory": "IVFbogus,Flat"}},
    ]
    data = _run(write_experiment(spec))
    by_label = {r["label"]: r for r in data["runs"]}
    assert by_label["plugins_for_tests:Crasher"]["status"] == "crashed"
    assert "SIGABRT" in by_label["plugins_for_tests:Crasher"]["error"]
    assert by_label["plugins_for_tests:Sleeper"]["status"] == "timeout"
    assert by_label["bad"]["status"] == "failed"
    assert "IVFbogus" in by_label["bad"]["error"]
    assert by_label["flat"]["status"] == "ok"
    assert sum(r["status"] == "ok" for r in data["runs"]) == 3


def test_duplicate_ids_are_rejected(write_experiment):
    spec = small_experiment(algorithms=[{"algorithm": "plugins_for_tests:Duplicator"}])
    data = _run(write_experiment(spec), executor="inline")
    (run,) = data["runs"]
    assert run["status"] == "failed" and "duplicate" in run["error"].lower()


def test_single_query_mode(write_experiment):
    spec = small_experiment(mode="single", algorithms=[
        {"algorithm": "faiss", "build": {"factory": "Flat"}}])
    (run,) = _run(write_experiment(spec))["runs"]
    assert run["status"] == "ok" and run["mode"] == "single" and run["recall"] == 1.0
    assert run["latency_p99_ms"] >= run["latency_p50_ms"]


def test_hdf5_file_uses_its_own_neighbours(write_experiment, tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(1500, 12)).astype(np.float32)
    test = rng.normal(size=(50, 12)).astype(np.float32)
    d = ((test[:, None] - train[None]) ** 2).sum(-1)
    nn = np.argsort(d, axis=1)[:, :20]
    path = tmp_path / "tiny-12-euclidean.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f.attrs["dimension"] = 12
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=nn.astype(np.int32))
        f.create_dataset("distances", data=np.sqrt(np.take_along_axis(d, nn, 1)))
    spec = small_experiment(dataset={"name": "hdf5", "path": str(path)}, k=10,
                            algorithms=[{"algorithm": "faiss", "build": {"factory": "Flat"}}])
    data = _run(write_experiment(spec))
    fs = data["dataset"]["feature_sets"]["vectors"]
    assert "own neighbours" in fs["ground_truth"]
    assert data["runs"][0]["recall"] == 1.0


def test_wrong_metric_for_file_ground_truth_is_caught(write_experiment, tmp_path):
    rng = np.random.default_rng(1)
    train = rng.normal(size=(800, 8)).astype(np.float32)
    test = rng.normal(size=(30, 8)).astype(np.float32)
    nn = np.argsort(-(test @ train.T), axis=1)[:, :10]  # inner-product neighbours
    path = tmp_path / "mislabelled.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=nn)
    spec = small_experiment(dataset={"name": "hdf5", "path": str(path)},
                            algorithms=[{"algorithm": "faiss", "build": {"factory": "Flat"}}])
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
    assert result.exit_code == 2
    assert "neighbours file is wrong" in result.output
    assert "ground_truth: recompute" in result.output


def _cli_error(path: Path) -> str:
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(path)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_unknown_algorithm_is_one_line(write_experiment):
    spec = small_experiment(algorithms=[{"algorithm": "no-such-thing"}])
    line = _cli_error(write_experiment(spec))
    assert "algorithms.0.algorithm" in line and "no-such-thing" in line


def test_unknown_key_is_one_line(write_experiment):
    spec = small_experiment()
    spec["algoritms"] = []
    line = _cli_error(write_experiment(spec))
    assert "algoritms" in line and "unknown key" in line


def test_unknown_dataset_option_is_one_line(write_experiment):
    spec = small_experiment()
    spec["dataset"]["n_cluster"] = 3
    line = _cli_error(write_experiment(spec))
    assert "dataset.n_cluster" in line


def test_missing_file_is_one_line(write_experiment, tmp_path):
    spec = small_experiment(dataset={"name": "hdf5", "path": str(tmp_path / "nope.hdf5")})
    line = _cli_error(write_experiment(spec))
    assert "nope.hdf5" in line


def test_missing_experiment_file_is_one_line(tmp_path):
    line = _cli_error(tmp_path / "missing.yaml")
    assert "missing.yaml" in line


def test_nan_in_vectors_is_one_line(write_experiment, tmp_path):
    db = np.random.default_rng(2).normal(size=(300, 8)).astype(np.float32)
    db[17, 3] = np.nan
    np.save(tmp_path / "db.npy", db)
    np.save(tmp_path / "q.npy", db[:10] + 1)
    spec = small_experiment(dataset={"name": "vectors", "database": str(tmp_path / "db.npy"),
                                     "queries": str(tmp_path / "q.npy")})
    line = _cli_error(write_experiment(spec))
    assert "17" in line and "NaN" in line


def test_dimension_mismatch_is_one_line(write_experiment, tmp_path):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "db.npy", rng.normal(size=(300, 8)).astype(np.float32))
    np.save(tmp_path / "q.npy", rng.normal(size=(10, 9)).astype(np.float32))
    spec = small_experiment(dataset={"name": "vectors", "database": str(tmp_path / "db.npy"),
                                     "queries": str(tmp_path / "q.npy")})
    line = _cli_error(write_experiment(spec))
    assert "9" in line and "8" in line and "dimension" in line


def test_sigkill_mid_run_resumes_without_duplicates(write_experiment, isolated_outputs):
    spec = small_experiment(runs=1)
    spec["algorithms"] = [
        {"algorithm": "faiss", "name": "ivf", "build": {"factory": ["IVF8,Flat", "IVF16,Flat",
                                                                    "IVF32,Flat"]},
         "query": {"nprobe": [1, 2, 4, 8]}},
        {"algorithm": "plugins_for_tests:SlowSearch", "build": {"delay_s": 0.5},
         "query": {}},
        {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
    ]
    path = write_experiment(spec)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, "-m", "bench.cli.main", "run", "--no-progress", str(path)]
    results = isolated_outputs / "results" / "small" / "results.json"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once some but not all runs are saved
        if results.exists():
            try:
                n = len(json.loads(results.read_text())["runs"])
            except (json.JSONDecodeError, KeyError):
                n = 0
            if n >= 4:
                break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = json.loads(results.read_text())["runs"]
    assert 4 <= len(partial) < 14
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    final = json.loads(results.read_text())["runs"]
    ids = [r["id"] for r in final]
    assert len(ids) == len(set(ids)) == 14
    assert all(r["status"] == "ok" for r in final)
    kept = {r["id"]: r["finished"] for r in partial}
    assert all(r["finished"] == kept[r["id"]] for r in final if r["id"] in kept)


@pytest.mark.parametrize("what", ["algorithms", "datasets", "experiments", "extractors"])
def test_list_commands(what):
    result = CliRunner().invoke(cli, ["list", what])
    assert result.exit_code == 0, result.output
    if what == "experiments":
        assert "quickstart" in result.output
    if what == "algorithms":
        assert "faiss" in result.output and "factory" in result.output


@pytest.mark.parametrize("name", sorted(builtin_experiments()))
def test_builtin_experiments_validate(name, tmp_path, monkeypatch):
    """Every shipped experiment loads (names, parameters, metrics) without running."""
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))  # bsds500 points at ${BENCH_DATA}
    assert load_experiment(name).experiment.name == name


def test_backends_experiment_covers_every_core_float_backend():
    from bench.algorithms import registry

    # optional libraries (extras) and wrappers around other backends are not "core"
    not_core = {"usearch", "pynndescent", "sharded", "fusion", "slice"}
    core = {name for name, cls in registry.items() if "euclidean" in cls.metrics} - not_core
    used = {g.algorithm for g in load_experiment("backends").experiment.algorithms}
    assert core <= used, core - used
