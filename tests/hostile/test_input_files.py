"""Hostile data files: empty, truncated, the wrong kind of HDF5 node, pickled objects,
a symlink loop in an image folder, a damaged ground-truth cache, impossible search
parameters. One line, exit 2 (or a failed run record), never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import small_experiment
from hostile_checks import one_error_line
from PIL import Image

from bench.cli.main import cli
from bench.core.errors import BenchError

_FLAT = [{"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}}]


def _run_cli(write_experiment, dataset: dict, **more) -> tuple:
    spec = {**small_experiment(dataset=dataset, algorithms=_FLAT), **more}
    path = write_experiment(spec)
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(path)])
    return result


def _files(tmp_path: Path) -> dict[str, Path]:
    q = tmp_path / "q.npy"
    np.save(q, np.random.default_rng(0).random((10, 8), dtype=np.float32))
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    group = tmp_path / "group.hdf5"
    with h5py.File(group, "w") as f:
        f.create_group("train")
        f.create_dataset("test", data=np.zeros((3, 8), np.float32))
        f.attrs["distance"] = "euclidean"
    strings = tmp_path / "strings.hdf5"
    with h5py.File(strings, "w") as f:
        f.create_dataset("train", data=np.array([[b"ab", b"cd"]] * 4))
        f.create_dataset("test", data=np.zeros((3, 2), np.float32))
        f.attrs["distance"] = "euclidean"
    return {"q": q, "empty": empty, "group": group, "strings": strings}


CASES = {
    "zero_byte_npy": (lambda f: {"name": "vectors", "database": str(f["empty"]),
                                 "queries": str(f["q"])}, "empty.npy: empty or truncated"),
    "hdf5_train_is_a_group": (lambda f: {"name": "hdf5", "path": str(f["group"])},
                              "train is an HDF5 group, not a dataset"),
    "hdf5_train_holds_strings": (lambda f: {"name": "hdf5", "path": str(f["strings"])},
                                 "train holds |S2; expected a numeric array"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_file_is_one_line(case, write_experiment, tmp_path, isolated_outputs):
    make, expected = CASES[case]
    dataset = make(_files(tmp_path))
    result = _run_cli(write_experiment, dataset)
    assert result.exit_code == 2, result.output
    assert expected in one_error_line(result)
    assert not (isolated_outputs / "results").exists()  # failed at load: nothing written


def test_npz_with_an_object_array_is_refused_without_unpickling(tmp_path):
    from bench.extractors.precomputed import FeatureFile, _read_npz

    path = tmp_path / "obj.npz"
    np.savez(path, features=np.array([{"a": 1}] * 3, dtype=object), ids=np.array(["a"] * 3))
    with pytest.raises(BenchError, match="array 'features' holds Python objects"):
        _read_npz(path, FeatureFile(path=str(path), key="features"))


def test_symlink_loop_in_an_image_folder_is_walked_once(tmp_path):
    from bench.datasets.images import iter_images

    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i, where in enumerate([folder, folder, folder / "sub"]):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(where / f"{i}.png")
    os.symlink("..", folder / "sub" / "up")  # sub/up/sub/up/... forever
    os.symlink(".", folder / "here")
    found = [p.name for p in iter_images(folder)]
    assert sorted(found) == ["0.png", "1.png", "2.png"]


def test_damaged_ground_truth_cache_is_recomputed(write_experiment, isolated_outputs):
    path = write_experiment(small_experiment(algorithms=_FLAT))
    runner = CliRunner()
    assert runner.invoke(cli, ["run", "--no-progress", str(path)]).exit_code == 0
    cached = list((isolated_outputs / "cache" / "groundtruth").glob("*.npy"))
    assert cached
    for p in cached:
        p.write_bytes(b"")  # zero-byte cache files (a full disk, a crash mid-copy)
    result = runner.invoke(cli, ["run", "--no-progress", "--force", str(path)])
    assert result.exit_code == 0, result.output
    assert all(p.stat().st_size > 0 for p in cached)
    runs = json.loads((isolated_outputs / "results" / "small" / "results.json").read_text())
    assert runs["runs"][0]["recall"] == 1.0


@pytest.mark.parametrize("value", [-1, 0, 1.5, True])
def test_impossible_search_parameter_fails_the_run(value, write_experiment, isolated_outputs):
    algos = [{"algorithm": "faiss", "name": "hnsw", "build": {"factory": "HNSW8"},
              "query": {"efSearch": value}}]
    path = write_experiment(small_experiment(algorithms=algos))
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(path)])
    assert "Traceback" not in result.output
    runs = json.loads((isolated_outputs / "results" / "small" / "results.json").read_text())
    run = runs["runs"][0]
    assert run["status"] == "failed", run
    assert f"efSearch={value!r}" in run["error"]
