"""Range search (query parameter ``radius``): Faiss Flat / IVF, faiss-binary, bruteforce agree."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from rich.console import Console

from bench.algorithms import registry
from bench.algorithms.range import range_to_knn
from bench.core.errors import BenchError
from bench.groundtruth.exact import exact_distances


def test_range_to_knn_sorts_truncates_and_pads():
    lims = np.array([0, 3, 3, 4])
    dist = np.array([0.5, 0.1, 0.3, 2.0], dtype=np.float32)
    ids = np.array([7, 8, 9, 4])
    d, i = range_to_knn(lims, dist, ids, 2)
    assert i.tolist() == [[8, 9], [-1, -1], [4, -1]]
    assert d[0].tolist() == pytest.approx([0.1, 0.3]) and np.isinf(d[1]).all()


def _backend(name: str, metric: str, dim: int, data: np.ndarray, **build):
    b = registry.get(name)(metric, dim, **build)
    b.build(data)
    return b


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_float_range_search_matches_exact_distances(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    q = rng.standard_normal((30, 8)).astype(np.float32)
    if metric == "angular":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    k = 400
    full = exact_distances(x, q, np.tile(np.arange(400), (30, 1)), metric)
    radius = float(np.quantile(full, 0.05))
    expected = [set(np.nonzero(row <= radius)[0]) for row in full]
    for name, build, query in (("bruteforce", {}, {}), ("faiss", {"factory": "Flat"}, {}),
                               ("faiss", {"factory": "IVF4,Flat"}, {"nprobe": 4})):
        b = _backend(name, metric, 8, x, **build)
        b.set_query_params(radius=radius, **query)
        dist, ids = b.finish(b.search_raw(q, k))
        got = [set(row[row >= 0].tolist()) for row in ids]
        assert got == expected, (name, build)
        assert all(np.all(np.diff(row[np.isfinite(row)]) >= -1e-6) for row in dist)
        # back to k-NN without the parameter
        b.set_query_params(**query)
        assert (b.search(q, 5)[1] >= 0).all()
    # k caps the results: the k closest within the radius
    b = _backend("faiss", metric, 8, x)
    b.set_query_params(radius=radius)
    capped = b.search(q, 3)[1]
    exact3 = np.argsort(full, axis=1, kind="stable")[:, :3]
    for row, ex, full_row in zip(capped, exact3, full, strict=True):
        want = [i for i in ex if full_row[i] <= radius]
        assert sorted(row[row >= 0].tolist()) == sorted(want)


def test_binary_range_search_is_inclusive_like_bruteforce():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (300, 8), dtype=np.uint8)
    q = x[:20] ^ rng.integers(0, 2, (20, 8), dtype=np.uint8)
    full = exact_distances(x, q, np.tile(np.arange(300), (20, 1)), "hamming")
    for radius in (4, 24):
        expected = [set(np.nonzero(row <= radius)[0]) for row in full]
        for name, build, query in (("bruteforce", {}, {}),
                                   ("faiss-binary", {"index_binary_factory": "BFlat"}, {}),
                                   ("faiss-binary", {"index_binary_factory": "BIVF4"},
                                    {"nprobe": 4})):
            b = _backend(name, "hamming", 64, x, **build)
            b.set_query_params(radius=radius, **query)
            ids = b.search(q, 300)[1]
            assert [set(r[r >= 0].tolist()) for r in ids] == expected, (name, radius)


def test_range_search_refusals():
    x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    b = _backend("faiss", "euclidean", 4, x, factory="NSG8")
    b.set_query_params(radius=1.0)
    with pytest.raises(BenchError, match="'NSG8' has no range search"):
        b.search(x[:2], 3)
    with pytest.raises(BenchError, match="radius must be a number"):
        _backend("bruteforce", "euclidean", 4, x).set_query_params(radius="far")


def test_radius_run_scores_the_in_radius_predictions(tmp_path):
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    spec = {"name": "rng", "seed": 1,
            "dataset": {"name": "copydetect-mini", "photos": ["astronaut", "coffee", "camera"],
                        "attacks": ["jpeg_50", "rotate_10", "crop_20"], "n_distractors": 30,
                        "distractor_size": 64, "max_side": 96, "negatives": 2, "workers": 1,
                        "progress": False},
            "extractor": {"name": "phash", "hash_size": 8}, "metric": "hamming", "k": 20,
            "runs": 1, "timeout": 60, "relevance": "identity",
            "algorithms": [{"algorithm": "bruteforce", "name": "exact",
                            "query": {"radius": [0, 10, 64]}},
                           {"algorithm": "faiss-binary", "name": "bflat",
                            "build": {"index_binary_factory": "BFlat"},
                            "query": {"radius": [10]}}]}
    path = tmp_path / "rng.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False, workers=1),
                             console)
    runs = load_results(results.path)["runs"]
    assert all(r["status"] == "ok" for r in runs), [r.get("error") for r in runs]
    by = {(r["label"], r["query_params"]["radius"]): r for r in runs}
    assert set(by) == {("exact", 0), ("exact", 10), ("exact", 64), ("bflat", 10)}
    # a wider radius admits more predictions; radius 64 bits admits all (capped at k)
    counts = [by[("exact", r)]["predictions"] for r in (0, 10, 64)]
    assert counts[0] <= counts[1] < counts[2] == 20 * (9 + 6)
    assert by[("bflat", 10)]["predictions"] == counts[1]
    assert by[("bflat", 10)]["uap"] == pytest.approx(by[("exact", 10)]["uap"])
