"""postprocess: PCA-whitening fitted on the background set only, then L2; end to end."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from rich.console import Console

from bench.config.sections import PostProcess
from bench.core.errors import BenchError
from bench.core.items import Item
from bench.datasets import VectorData, register
from bench.datasets.base import Dataset
from bench.features.postprocess import postprocess_vectors

RNG = np.random.default_rng(0)
SCALE = np.array([10.0, 5.0, 1.0, 0.5, 0.1, 0.05])


def _data(n_bg: int = 300) -> VectorData:
    db = (RNG.standard_normal((40, 6)) * SCALE).astype(np.float32)
    q = (db[:10] + 0.01 * RNG.standard_normal((10, 6))).astype(np.float32)
    q = np.concatenate([q, (RNG.standard_normal((5, 6)) * SCALE).astype(np.float32)])
    bg = (RNG.standard_normal((n_bg, 6)) * SCALE + 3.0).astype(np.float32)
    return VectorData(database=db, queries=q, background=bg,
                      database_items=[Item(id=f"d{i}", identity=f"x:{i}") for i in range(40)],
                      query_items=[Item(id=f"q{i}", identity=f"x:{i if i < 10 else 100 + i}")
                                   for i in range(15)])


def test_whitening_is_fitted_on_the_background_only():
    data = _data()
    out = postprocess_vectors(data, PostProcess(pca_whiten=4), "test")
    bg = out.background.astype(np.float64)
    # whitened background: zero mean, identity covariance; database not used for the fit
    assert np.allclose(bg.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(np.cov(bg, rowvar=False), np.eye(4), atol=1e-2)
    mean = data.background.astype(np.float64).mean(axis=0)
    _, s, vt = np.linalg.svd(data.background.astype(np.float64) - mean, full_matrices=False)
    ref = (data.database - mean) @ vt[:4].T / (s[:4] / np.sqrt(len(data.background) - 1))
    assert np.allclose(np.abs(out.database), np.abs(ref), atol=1e-3)  # up to component sign
    assert out.description["postprocess"]["n_fit"] == 300
    unit = postprocess_vectors(data, PostProcess(pca_whiten=4, l2norm=True), "test")
    assert np.allclose(np.linalg.norm(unit.queries, axis=1), 1, atol=1e-5)
    assert postprocess_vectors(data, None, "test") is data


def test_postprocess_refusals_are_one_line():
    data = _data()
    with pytest.raises(BenchError, match="background set is 300 x 6"):
        postprocess_vectors(data, PostProcess(pca=7), "test")
    with pytest.raises(BenchError, match="the dataset has neither"):
        postprocess_vectors(VectorData(database=data.database, queries=data.queries),
                            PostProcess(pca_whiten=2), "test")
    codes = VectorData(database=np.zeros((3, 8), np.uint8), queries=np.zeros((2, 8), np.uint8))
    with pytest.raises(BenchError, match="not binary codes"):
        postprocess_vectors(codes, PostProcess(l2norm=True), "test")
    with pytest.raises(ValueError, match="not both"):
        PostProcess(pca=2, pca_whiten=2)


@register("pp-test-vectors")
class _Vectors(Dataset):
    def load(self) -> VectorData:
        return _data()


def test_postprocessed_identity_run_end_to_end(tmp_path):
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    spec = {"name": "pp", "seed": 1, "dataset": {"name": "pp-test-vectors"},
            "metric": "angular", "k": 3, "runs": 1, "timeout": 60,
            "postprocess": {"pca_whiten": 4, "l2norm": True},
            "relevance": {"mode": "identity", "pooled": {"normalise": {"n": 5}}},
            "algorithms": [{"algorithm": "bruteforce", "name": "exact"}]}
    path = tmp_path / "pp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False, workers=1),
                             console)
    data = load_results(results.path)
    (run,) = data["runs"]
    assert run["status"] == "ok", run.get("error")
    fs = data["dataset"]["feature_sets"]["vectors"]
    assert fs["dim"] == 4 and fs["postprocess"]["pca_whiten"] == 4
    assert (run["positive_queries"], run["negative_queries"]) == (10, 5)
    assert run["accuracy@1"] == 1.0 and run["hit_rate"] == 1.0 and run["uap_norm"] is not None


def test_training_set_takes_precedence_for_the_fit():
    data = _data()
    train = (RNG.standard_normal((200, 6)) * SCALE[::-1]).astype(np.float32)
    from dataclasses import replace

    out = postprocess_vectors(replace(data, training=train), PostProcess(pca_whiten=3), "test")
    assert out.description["postprocess"]["fitted_on"] == "training"
    assert out.description["postprocess"]["n_fit"] == 200 and out.training is None
    # whitened with the training statistics: the training set, not the background, is white
    from sklearn.decomposition import PCA

    ref = PCA(3, whiten=True, svd_solver="full").fit(train.astype(np.float64))
    assert np.allclose(out.queries, ref.transform(data.queries.astype(np.float64)), atol=1e-4)


def test_copydetect_mini_training_set_fits_whitened_hash_bits(tmp_path):
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    spec = {"name": "ppmini", "seed": 1,
            "dataset": {"name": "copydetect-mini", "photos": ["astronaut", "coffee"],
                        "attacks": ["jpeg_50", "rotate_5"], "n_distractors": 10,
                        "distractor_size": 64, "max_side": 96, "background": 20,
                        "training": 40, "workers": 1, "progress": False},
            "extractor": {"name": "dhash", "hash_size": 4, "as_float": True},
            "metric": "euclidean", "k": 2, "runs": 1, "timeout": 60,
            "postprocess": {"pca": 8, "l2norm": True}, "relevance": "identity",
            "algorithms": [{"algorithm": "bruteforce", "name": "exact"}]}
    path = tmp_path / "ppmini.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False, workers=1),
                             console)
    data = load_results(results.path)
    (run,) = data["runs"]
    assert run["status"] == "ok", run.get("error")
    fs = next(iter(data["dataset"]["feature_sets"].values()))
    assert fs["dim"] == 8
    assert fs["postprocess"]["fitted_on"] == "training" and fs["postprocess"]["n_fit"] == 40
