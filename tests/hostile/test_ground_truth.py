"""Hostile ground truth: a wrong neighbour table must fail, never inflate recall.

Each case asserts one clear line, the exit code, and that nothing outside the
configured roots was touched (see README.md beside this file)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import small_experiment
from hostile_checks import one_error_line, tree

from bench.cli.main import cli
from bench.groundtruth.exact import ground_truth_problem

# ---------------------------------------------------------------- ground truth (critical)

def _ann_file(path: Path, corrupt) -> Path:
    """A small ann-benchmarks file whose `neighbors` table is damaged by ``corrupt``."""
    rng = np.random.default_rng(3)
    train = rng.normal(size=(2000, 12)).astype(np.float32)
    test = rng.normal(size=(400, 12)).astype(np.float32)
    d = ((test[:, None] - train[None]) ** 2).sum(-1)
    nn = np.argsort(d, axis=1, kind="stable")[:, :10].astype(np.int32)
    nn = corrupt(nn, rng)
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f.create_dataset("train", data=train)
        f.create_dataset("test", data=test)
        f.create_dataset("neighbors", data=nn)
    return path


def _random_ids(nn, rng):
    return rng.integers(0, 2000, size=nn.shape).astype(np.int32)


def _off_by_one(nn, rng):
    return np.minimum(nn + 1, 1999)


def _corrupt_after_200(nn, rng):
    nn = nn.copy()
    nn[250:] = rng.integers(0, 2000, size=nn[250:].shape)
    return nn


def _duplicate_in_row(nn, rng):
    nn = nn.copy()
    nn[321, 5] = nn[321, 4]
    return nn


def _out_of_range(nn, rng):
    nn = nn.copy()
    nn[7, 2] = -1
    return nn


@pytest.mark.parametrize("corrupt", [_random_ids, _off_by_one, _corrupt_after_200,
                                     _duplicate_in_row, _out_of_range],
                         ids=lambda f: f.__name__.strip("_"))
def test_wrong_neighbours_file_is_refused(corrupt, write_experiment, tmp_path,
                                          isolated_outputs):
    path = _ann_file(tmp_path / "data.hdf5", corrupt)
    spec = small_experiment(dataset={"name": "hdf5", "path": str(path)},
                            algorithms=[{"algorithm": "hnswlib", "build": {"M": 8},
                                         "query": {"ef": [10]}}])
    exp = write_experiment(spec)
    before = tree(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(exp)])
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert str(path) in line and "ground_truth: recompute" in line
    written = tree(tmp_path) - before
    roots = ("results", "cache", "plots")
    assert all(p.split("/")[0] in roots for p in written), written
    assert not (tmp_path / "results" / "small" / "results.json").exists()


def test_recompute_replaces_a_wrong_neighbours_file(write_experiment, tmp_path):
    path = _ann_file(tmp_path / "data.hdf5", _random_ids)
    spec = small_experiment(dataset={"name": "hdf5", "path": str(path)},
                            ground_truth="recompute",
                            algorithms=[{"algorithm": "faiss", "build": {"factory": "Flat"}}])
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results" / "small" / "results.json").read_text())
    assert data["runs"][0]["recall"] == 1.0
    assert data["dataset"]["feature_sets"]["vectors"]["ground_truth"].startswith("exact")


def test_corrupted_cache_is_recomputed_with_a_warning(write_experiment, tmp_path):
    spec = small_experiment(algorithms=[{"algorithm": "hnswlib", "build": {"M": 8},
                                         "query": {"ef": [10]}}],
                            build_threads=1)  # multi-threaded hnswlib builds vary run to run
    exp = write_experiment(spec)
    assert CliRunner().invoke(cli, ["run", "--no-progress", str(exp)]).exit_code == 0
    first = json.loads((tmp_path / "results" / "small" / "results.json").read_text())
    [ids_file] = (tmp_path / "cache" / "groundtruth").glob("*.ids.npy")
    ids = np.load(ids_file)
    rng = np.random.default_rng(0)
    np.save(ids_file, rng.permutation(ids.ravel()).reshape(ids.shape))  # shuffled table
    result = CliRunner().invoke(cli, ["run", "--no-progress", "--force", str(exp)])
    assert result.exit_code == 0, result.output
    assert "fails its check" in result.output and "recomputing" in result.output
    again = json.loads((tmp_path / "results" / "small" / "results.json").read_text())
    assert again["runs"][0]["recall"] == first["runs"][0]["recall"]
    assert np.array_equal(np.load(ids_file), ids)


def test_canary_samples_queries_spread_over_all():
    from bench.run.truth import canary_sample

    sample = canary_sample(10_000, seed=1)
    assert len(sample) == 200 and len(set(sample.tolist())) == 200
    assert sample.max() > 5000 and sample.min() < 5000
    assert np.array_equal(sample, canary_sample(10_000, seed=1))


def test_ground_truth_problem_names_unsorted_distances():
    ids = np.array([[0, 1, 2]])
    assert ground_truth_problem(ids, np.array([[0.1, 0.3, 0.2]]), 3, 3) is not None
    assert ground_truth_problem(ids, np.array([[0.1, 0.2, 0.2]]), 3, 3) is None
