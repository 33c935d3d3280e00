"""Clustering experiments: metrics on hand-made labelled sets, dense vs sparse DBSCAN,
the clustering section's validation, and an offline end-to-end run with its plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from bench.clustering import algorithms as algo
from bench.clustering.distances import BudgetExceeded, Space, graph_from_condensed
from bench.clustering.metrics import cluster_table, label_scores
from bench.config.clustering import parse_clustering, plan_runs
from bench.config.experiment import load_experiment
from bench.core.errors import BenchError

# --- label metrics against hand-computed values -------------------------------------------


def test_label_scores_match_hand_computed_values():
    # identities {a, a, b, b}; the clustering splits b in two.
    # H(K) = 1.5 bits, H(K|C) = 0.5 bit -> completeness 2/3; every cluster is pure -> h = 1
    # ARI: index 1, expected 2 * 1 / 6 = 1/3, max 1.5 -> (1 - 1/3) / (1.5 - 1/3) = 4/7
    # NMI (geometric): I = 1 bit, sqrt(H(C) H(K)) = sqrt(1 * 1.5)
    s = label_scores(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]))
    assert s["homogeneity"] == pytest.approx(1.0)
    assert s["completeness"] == pytest.approx(2 / 3)
    assert s["v_measure"] == pytest.approx(0.8)
    assert s["adjusted_rand"] == pytest.approx(4 / 7)
    assert s["nmi"] == pytest.approx(1 / np.sqrt(1.5))
    assert s["n_clusters"] == 3 and s["n_noise"] == 0
    # with the arithmetic mean NMI is the V-measure (hence geometric by default)
    assert label_scores(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]),
                        "arithmetic")["nmi"] == pytest.approx(0.8)


def test_noise_points_count_as_singletons():
    # identities {a, a, b, b}; b is all noise: two singletons, so b is split (C < 1) but
    # every cluster stays pure (H = 1). Dropping noise instead would report C = 1.
    s = label_scores(np.array([0, 0, 1, 1]), np.array([0, 0, -1, -1]))
    assert s["homogeneity"] == pytest.approx(1.0)
    assert s["completeness"] == pytest.approx(2 / 3)
    assert (s["n_clusters"], s["n_noise"], s["noise_fraction"]) == (1, 2, 0.5)


# --- per-cluster statistics on hand-made points -------------------------------------------

SQUARE_AND_PAIR = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [10, 0], [10, 2]], dtype=np.float32)


def test_cluster_table_on_a_square_and_a_pair():
    space = Space(SQUARE_AND_PAIR, "euclidean")
    labels = np.array([0, 0, 0, 0, 1, 1])
    idents = ["a", "a", "a", "b", "b", "b"]
    table = cluster_table(space, labels, idents, quantile=1.0, max_pairs=1000, seed=0)
    c = table["clusters"]
    assert c["size"] == [4, 2]
    assert c["diameter"] == pytest.approx([np.sqrt(2), 2.0])  # square diagonal, pair gap
    assert c["nearest_outside"] == pytest.approx([9.0, 9.0])  # (1,0) to (10,0)
    assert c["dispersion"] == pytest.approx([np.sqrt(0.5), 1.0])  # to (0.5,0.5) and (10,1)
    assert c["identity"] == ["a", "b"] and c["purity"] == pytest.approx([0.75, 1.0])
    assert c["members"] == [[0, 1, 2, 3], [4, 5]]  # equidistant: row order
    # the square's six distances are 1,1,1,1,sqrt2,sqrt2: their median is 1
    median = cluster_table(space, labels, idents, quantile=0.5, max_pairs=1000, seed=0)
    assert median["clusters"]["diameter"][0] == pytest.approx(1.0)


def test_cluster_table_hamming_uses_the_majority_code():
    codes = np.array([[0b00000000], [0b00000001], [0b00000011], [0b11111111]], dtype=np.uint8)
    space = Space(codes, "hamming")
    table = cluster_table(space, np.array([0, 0, 0, 1]), ["x", "x", "x", "y"], quantile=1.0,
                          max_pairs=1000, seed=0)
    c = table["clusters"]
    # majority of the first three codes is 00000001: distances 1, 0, 1
    assert c["dispersion"][0] == pytest.approx(2 / 3)
    assert c["members"][0] == [1, 0, 2]  # closest to the centroid first
    assert c["diameter"][0] == 2.0 and c["nearest_outside"][0] == 6.0


# --- algorithms on a toy set whose answer is known ----------------------------------------


def _blobs(metric: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if metric == "hamming":
        centres = rng.integers(0, 256, size=(3, 8), dtype=np.uint8)
        rows, labels = [], []
        for c, centre in enumerate(centres):
            for _ in range(20):
                bits = np.unpackbits(centre)
                flip = rng.choice(64, size=int(rng.integers(0, 4)), replace=False)
                bits[flip] ^= 1
                rows.append(np.packbits(bits))
                labels.append(c)
        return np.array(rows), np.array(labels)
    centres = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5]], dtype=np.float64)
    x = np.concatenate([c + 0.3 * rng.standard_normal((20, 3)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(3), 20)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "hamming"])
def test_hierarchical_cuts_recover_well_separated_identities(metric):
    x, truth = _blobs(metric)
    space = Space(x, metric)
    condensed = space.condensed()
    methods = ["single", "complete", "average"] + (["ward", "centroid"]
                                                  if metric == "euclidean" else [])
    for method in methods:
        labels = algo.cut_tree_at(algo.linkage_matrix(condensed, method), 3)
        s = label_scores(truth, labels)
        assert s["v_measure"] == pytest.approx(1.0), method
        assert s["adjusted_rand"] == pytest.approx(1.0), method


def test_kmeans_reference_recovers_blobs():
    x, truth = _blobs("euclidean")
    labels = algo.kmeans_labels(Space(x, "euclidean"), 3, n_init=2, max_iter=100, seed=1)
    assert label_scores(truth, labels)["adjusted_rand"] == pytest.approx(1.0)


# --- the sparse path gives the dense path's DBSCAN labels ---------------------------------


def _overlapping(metric: str) -> np.ndarray:
    """Clusters that touch, plus scattered points: border and noise points both occur."""
    rng = np.random.default_rng(3)
    if metric == "hamming":
        base = rng.integers(0, 256, size=(6, 8), dtype=np.uint8)
        bits = np.unpackbits(base[rng.integers(0, 6, 400)], axis=1)
        bits ^= (rng.random(bits.shape) < rng.uniform(0.0, 0.12, (400, 1))).astype(np.uint8)
        codes = np.packbits(bits, axis=1)
        return np.concatenate([codes, codes[:20]])  # exact duplicates: distance 0 edges
    centres = rng.normal(size=(5, 6)) * 1.5
    x = centres[rng.integers(0, 5, 400)] + rng.normal(size=(400, 6)) * rng.uniform(
        0.2, 1.0, (400, 1))
    return x.astype(np.float32)


@pytest.mark.parametrize(("metric", "eps_values"), [
    ("euclidean", [0.6, 1.0, 1.6]), ("cosine", [0.02, 0.06, 0.15]), ("hamming", [2, 4, 7])])
def test_sparse_radius_graph_gives_the_dense_dbscan_labels(metric, eps_values):
    from sklearn.cluster import DBSCAN

    x = _overlapping(metric)
    space = Space(x, metric)
    condensed = space.condensed()
    for eps in eps_values:
        if metric == "hamming":  # integer distances sit exactly on eps: "<= eps" is tested
            assert (condensed == eps).any()
        else:  # float distances: keep clear of eps, where float32 and float64 may disagree
            assert not np.any(np.isclose(condensed, eps, rtol=1e-6)), "eps on a tie"
        dense_graph = graph_from_condensed(condensed, len(x), eps)
        sparse_graph = space.radius_graph(eps, budget_bytes=2**30)
        assert dense_graph.nnz == sparse_graph.nnz
        assert (dense_graph != sparse_graph).nnz == 0 or np.allclose(
            dense_graph.toarray(), sparse_graph.toarray())
        for min_samples in (2, 5):
            dense = algo.dbscan_labels(dense_graph, eps, min_samples)
            sparse = algo.dbscan_labels(sparse_graph, eps, min_samples)
            np.testing.assert_array_equal(dense, sparse)
            # and both are scikit-learn's own DBSCAN on the raw features
            if metric == "hamming":
                raw = DBSCAN(eps=(eps + 0.5) / 64, min_samples=min_samples, metric="hamming")
                reference = raw.fit(np.unpackbits(x, axis=1).astype(bool)).labels_
            else:
                raw = DBSCAN(eps=eps, min_samples=min_samples, metric=metric)
                reference = raw.fit(x.astype(np.float64)).labels_
            np.testing.assert_array_equal(dense, reference)
            assert len(set(dense)) > 2 and (dense == -1).any()  # clusters and noise


def test_hamming_condensed_matches_scipy_for_odd_code_widths():
    from scipy.spatial.distance import pdist

    codes = np.random.default_rng(5).integers(0, 256, size=(40, 5), dtype=np.uint8)
    reference = pdist(np.unpackbits(codes, axis=1).astype(bool), "hamming") * 40
    np.testing.assert_array_equal(Space(codes, "hamming").condensed(), np.rint(reference))


def test_radius_graph_respects_the_memory_budget():
    x = _overlapping("euclidean")
    with pytest.raises(BudgetExceeded, match="memory_budget_mb"):
        Space(x, "euclidean").radius_graph(50.0, budget_bytes=1000)


# --- the clustering section -----------------------------------------------------------------


def _experiment(tmp_path: Path, clustering: dict, name: str = "clu", **extra) -> Path:
    spec = {
        "name": name, "seed": 3, "kind": "clustering",
        "dataset": {"name": "copydetect-mini", "n_distractors": 0,
                    "photos": ["astronaut", "camera", "coffee", "coins"],
                    "attacks": ["jpeg_50", "gaussian_blur_3", "brightness_1.5", "contrast_0.66",
                                "scale_0.8", "sharpness_2", "rotate_5", "crop_10"],
                    "workers": 1, "progress": False},
        "extractor": {"name": "dhash", "hash_size": 8},
        "metric": "hamming", "clustering": clustering, **extra,
    }
    import yaml

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize(("section", "message"), [
    ({"algorithms": [{"algorithm": "dbscan", "epz": [1]}]},
     "clustering.algorithms.0.epz: unknown key"),
    ({"algorithms": [{"algorithm": "dbscan", "eps": [-1]}]}, "clustering.algorithms.0.eps"),
    ({"algorithms": [{"algorithm": "spectral"}]}, "clustering.algorithms.0"),
    ({"algorithms": [{"algorithm": "hierarchical", "linkage": "ward", "n_clusters": 3}]},
     "clustering.algorithms.0.linkage: ward linkage is defined only for euclidean"),
    ({"metrics": ["cosine"], "algorithms": [{"algorithm": "kmeans", "n_clusters": 3}]},
     "clustering.metrics.0: metric 'cosine' does not apply to the packed binary codes"),
    ({"algorithms": []}, "clustering.algorithms"),
    ({"memory_budget_mb": 0, "algorithms": [{"algorithm": "kmeans", "n_clusters": 2}]},
     "clustering.memory_budget_mb"),
])
def test_clustering_section_errors_name_the_key(tmp_path, section, message):
    # load_experiment validates the clustering section itself (fail before extracting)
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_experiment(_experiment(tmp_path, section))


def test_plan_skips_euclidean_only_linkages_under_other_metrics(tmp_path):
    loaded = load_experiment(_experiment(tmp_path, {
        "metrics": ["hamming", "euclidean"],
        "algorithms": [{"algorithm": "hierarchical", "n_clusters": [2, "identities"]}]}))
    runs = plan_runs(parse_clustering(loaded), "hamming")
    pairs = {(r.metric, r.linkage) for r in runs}
    assert ("hamming", "ward") not in pairs and ("hamming", "centroid") not in pairs
    assert ("euclidean", "ward") in pairs and ("hamming", "average") in pairs
    assert len(runs) == 2 * (3 + 5)


# --- offline end to end: copydetect-mini photos and their attacks -------------------------


SECTION = {
    "memory_budget_mb": 64, "grids": {"clusters": 2, "members": 3},
    "algorithms": [
        {"algorithm": "hierarchical", "linkage": ["single", "average"],
         "n_clusters": [2, "identities"]},
        {"algorithm": "hierarchical", "metric": "euclidean", "linkage": "ward",
         "n_clusters": "identities"},
        {"algorithm": "dbscan", "eps": [4, 10], "min_samples": [2, 3]},
        {"algorithm": "kmeans", "metric": "euclidean", "n_clusters": "identities", "n_init": 2},
    ],
}


def test_clustering_experiment_end_to_end(tmp_path):
    from bench.clustering.plots import clustering_plots
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    opts = RunOptions(executor="inline", progress=False, workers=1)
    results = run_experiment(_experiment(tmp_path, SECTION, name="dense"), opts, console)
    runs = results.runs
    assert len(runs) == 2 * 2 + 1 + 2 * 2 + 1
    assert all(r["status"] == "ok" for r in runs), [r.get("error") for r in runs]
    folder = results.path.parent
    data = load_results(results.path)
    fs = data["dataset"]["feature_sets"]["dhash"]
    assert (fs["n_items"], fs["n_identities"]) == (4 * 9, 4)
    items = json.loads((folder / fs["items_file"]).read_text())["database"]
    truth = [it["identity"] for it in items]
    assert len(set(truth)) == 4 and all(t.startswith("mini:") for t in truth)
    assert data["clustering"]["distances"]["dhash/hamming"]["path"] == "dense"
    for r in runs:
        labels = np.load(folder / r["labels_file"])
        again = label_scores(np.unique(truth, return_inverse=True)[1], labels, "geometric")
        assert r["v_measure"] == pytest.approx(again["v_measure"])
        assert r["n_clusters"] == again["n_clusters"] == r["k"]
        table = json.loads((folder / r["clusters_file"]).read_text())["clusters"]
        assert sum(table["size"]) == int((labels >= 0).sum())
        if r["algorithm"] == "hierarchical":
            assert r["distance_path"] == "dense" and (folder / r["linkage_file"]).exists()
            if r["query_params"]["n_clusters"] == "identities":
                assert r["n_clusters_requested"] == 4
    reference = data["clustering"]["identities"]["dhash/hamming"]
    assert reference["purity_mean"] == 1.0 and reference["size_median"] == 9
    # mild attacks keep dHash codes close: ward on the bits recovers most identities
    ward = next(r for r in runs if r["label"] == "hierarchical-ward")
    assert ward["v_measure"] > 0.5

    written = clustering_plots(data, tmp_path / "plots", svg=False)
    names = {p.name for p in written}
    assert {"homogeneity_completeness.png", "metrics_vs_clusters.png", "cluster_sizes.png",
            "cluster_diameters.png", "clustering_runs.csv",
            "dhash-hamming-average.png", "dhash-euclidean-ward.png"} <= names
    grids = [p for p in written if "grids" in p.parts]
    assert len(grids) == 3 * 2  # best run of each algorithm, two largest clusters
    assert all(p.stat().st_size > 5000 for p in written if p.suffix == ".png")

    # the same experiment on the sparse path: DBSCAN labels identical, hierarchical refused
    sparse = run_experiment(_experiment(tmp_path, {**SECTION, "distances": "sparse"},
                                        name="sparse"), opts, console)
    by_id = {r["id"]: r for r in runs}
    for r in sparse.runs:
        dense_run = by_id[r["id"]]
        if r["algorithm"] == "dbscan":
            assert r["distance_path"] == "sparse" and dense_run["distance_path"] == "dense"
            np.testing.assert_array_equal(np.load(sparse.path.parent / r["labels_file"]),
                                          np.load(folder / dense_run["labels_file"]))
        elif r["algorithm"] == "hierarchical":
            assert r["status"] == "failed" and "condensed matrix" in r["error"]
        else:
            assert r["status"] == "ok"


def test_rerun_skips_finished_runs_and_restarts_when_options_change(tmp_path):
    from bench.run.runner import RunOptions, run_experiment

    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    opts = RunOptions(executor="inline", progress=False, workers=1)
    section = {"algorithms": [{"algorithm": "dbscan", "eps": 6}]}
    first = run_experiment(_experiment(tmp_path, section), opts, console)
    stamp = first.runs[0]["finished"]
    labels = first.path.parent / first.runs[0]["labels_file"]
    labels.unlink()  # a skipped run does not rewrite its files
    second = run_experiment(_experiment(tmp_path, section), opts, console)
    assert [r["finished"] for r in second.runs] == [stamp] and not labels.exists()
    third = run_experiment(_experiment(tmp_path, {**section, "diameter_quantile": 0.5}), opts,
                           console)
    assert len(third.runs) == 1 and labels.exists()
    assert third.runs[0]["diameter_quantile"] == 0.5


def test_auto_takes_the_sparse_path_when_the_matrix_is_over_budget(tmp_path):
    from bench.run.runner import RunOptions, run_experiment

    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    section = {"memory_budget_mb": 0.005,  # 5 KiB: 36 items need 10 KiB on the dense path
               "algorithms": [{"algorithm": "dbscan", "eps": 6},
                              {"algorithm": "hierarchical", "linkage": "average",
                               "n_clusters": 4}]}
    results = run_experiment(_experiment(tmp_path, section),
                             RunOptions(executor="inline", progress=False, workers=1), console)
    dbscan, hier = sorted(results.runs, key=lambda r: r["algorithm"])
    assert dbscan["status"] == "ok" and dbscan["distance_path"] == "sparse"
    assert hier["status"] == "failed" and hier["stage"] == "distances"
    assert "memory_budget_mb" in hier["error"]
    info = results.data["clustering"]["distances"]["dhash/hamming"]
    assert info["path"] == "sparse" and info["dense_path_bytes"] > info["budget_bytes"]
