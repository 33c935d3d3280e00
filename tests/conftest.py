"""Shared fixtures: every test writes results and caches under its own tmp folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(autouse=True)
def isolated_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCH_PLOTS", str(tmp_path / "plots"))
    return tmp_path


@pytest.fixture
def write_experiment(tmp_path: Path):
    """Write an experiment dict as YAML and return its path."""

    def write(spec: dict, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


def small_experiment(**overrides) -> dict:
    spec = {
        "name": "small",
        "seed": 7,
        "dataset": {"name": "synthetic", "kind": "clustered", "n": 2000, "n_queries": 100,
                    "dim": 16, "n_clusters": 10},
        "metric": "euclidean",
        "k": 10,
        "runs": 1,
        "max_point_s": 0.05,  # timing is not what these tests check: keep the suite short
        "timeout": 60,
        "algorithms": [
            {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
            {"algorithm": "faiss", "name": "ivf", "build": {"factory": "IVF16,Flat"},
             "query": {"nprobe": [1, 4]}},
        ],
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def torch_one_thread():
    """One intra-op torch thread: on a shared 2-core machine OpenMP threads that wait
    for a descheduled partner make small forwards 10-30x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
