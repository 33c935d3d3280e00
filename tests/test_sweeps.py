"""Sweeps in one experiment: build threads apart from query threads, thread and
metric lists, and database sizes as nested prefixes of one seeded order."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import small_experiment

from bench.cli.main import cli
from bench.config.experiment import load_experiment
from bench.core.errors import BenchError
from bench.results.record import record_key
from bench.run.runner import RunOptions, run_experiment


def _run(path, **kw) -> dict:
    return json.loads(run_experiment(path, RunOptions(progress=False, **kw)).path.read_text())


def test_build_threads_default_all_cores_and_apart_from_query_threads(write_experiment):
    cores = len(os.sched_getaffinity(0))
    spec = small_experiment(threads=1, algorithms=[{"algorithm": "plugins_for_tests:ThreadProbe"}])
    data = _run(write_experiment(spec))
    (run,) = data["runs"]
    assert run["status"] == "ok", run.get("error")
    assert run["build_threads"] == cores and data["environment"]["build_threads"] == cores
    assert run["extra"]["build_threads_seen"] == cores
    assert run["extra"]["search_threads_seen"] == 1 and run["threads"] == 1
    spec["build_threads"] = 1
    spec["name"] = "small-bt1"
    (run,) = _run(write_experiment(spec, "bt1.yaml"))["runs"]
    assert run["build_threads"] == 1 and run["extra"]["build_threads_seen"] == 1
    assert run["extra"]["build_blas_threads"] == 1


def test_thread_and_metric_lists_run_the_grid_for_each(write_experiment):
    spec = small_experiment(metric=["euclidean", "l1"], threads=[1, 2], algorithms=[
        {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
        {"algorithm": "plugins_for_tests:ThreadProbe", "name": "probe"}])
    spec["algorithms"][1]["algorithm"] = "bruteforce"  # the probe has no l1
    data = _run(write_experiment(spec))
    runs = data["runs"]
    assert len(runs) == 2 * 2 * 2 and all(r["status"] == "ok" for r in runs)
    combos = {(r["label"], r["metric"], r["threads"]) for r in runs}
    assert len(combos) == 8
    assert len({r["id"] for r in runs}) == 8 and all(record_key(r) == r["id"] for r in runs)
    assert all(r["recall"] == 1.0 for r in runs)
    assert {r["feature_set"] for r in runs} == {"vectors@euclidean", "vectors@l1"}
    assert set(data["dataset"]["feature_sets"]) == {"vectors@euclidean", "vectors@l1"}
    # re-running skips all of them
    again = _run(write_experiment(spec))
    assert [r["finished"] for r in again["runs"]] == [r["finished"] for r in runs]


def test_database_sizes_are_nested_prefixes_with_their_own_ground_truth(write_experiment):
    spec = small_experiment(algorithms=[{"algorithm": "faiss", "name": "flat",
                                         "build": {"factory": "Flat"}}])
    spec["dataset"]["sizes"] = [300, 1200, 2000]
    path = write_experiment(spec)
    assert load_experiment(path).experiment.database_sizes == [300, 1200, 2000]
    data = _run(path)
    runs = sorted(data["runs"], key=lambda r: r["n_database"])
    assert [r["n_database"] for r in runs] == [300, 1200, 2000]
    assert all(r["recall"] == 1.0 for r in runs)  # each scored against its own size's truth
    sets = data["dataset"]["feature_sets"]
    assert set(sets) == {"vectors@n300", "vectors@n1200", "vectors@n2000"}
    cache = os.environ["BENCH_CACHE"]
    arrays = {key: np.load(f"{cache}/prepared/{d['fingerprint']}-database.npy")
              for key, d in sets.items()}
    np.testing.assert_array_equal(arrays["vectors@n300"], arrays["vectors@n1200"][:300])
    np.testing.assert_array_equal(arrays["vectors@n1200"], arrays["vectors@n2000"][:1200])
    # the full size is a seeded permutation of the original rows, not the original order
    full = arrays["vectors@n2000"]
    assert not np.array_equal(full, np.sort(full, axis=0))
    assert sets["vectors@n300"]["database_order"]["seed"] == 7
    # neighbours of the small database are its own: ids < 300, and not those of the big one
    folder = os.path.join(os.environ["BENCH_RESULTS"], "small")
    nb = {r["n_database"]: np.load(os.path.join(folder, r["neighbors_file"])) for r in runs}
    assert nb[300].max() < 300 and nb[2000].max() >= 300
    assert len(os.listdir(f"{cache}/groundtruth")) >= 3  # one cached table per size


def test_identity_originals_come_first_in_every_prefix(tmp_path):
    from bench.core.items import Item
    from bench.features.prepare import FeatureSet
    from bench.run.sweep import database_prefixes

    rng = np.random.default_rng(0)
    db = rng.standard_normal((50, 4)).astype(np.float32)
    db_items = [Item(id=f"d{i}", identity=f"id{i}" if i % 10 == 0 else None) for i in range(50)]
    q_items = [Item(id=f"q{i}", identity=f"id{i * 10}") for i in range(5)]
    fs = FeatureSet(extractor=None, metric="euclidean", database=db, queries=db[:5],
                    database_path=tmp_path / "db.npy", queries_path=tmp_path / "q.npy",
                    fingerprint="f" * 32, database_items=db_items, query_items=q_items)
    small, big = database_prefixes(fs, [5, 30], seed=3, cache_dir=tmp_path)
    assert {it.identity for it in small.database_items} == {f"id{i}" for i in range(0, 50, 10)}
    assert [it.id for it in big.database_items[:5]] == [it.id for it in small.database_items]
    np.testing.assert_array_equal(big.database[:5], small.database)
    rows = [int(it.id[1:]) for it in big.database_items]
    np.testing.assert_array_equal(big.database, db[rows])
    with pytest.raises(BenchError, match="below the 5 originals"):
        database_prefixes(fs, [4, 30], seed=3, cache_dir=tmp_path)


def test_size_larger_than_database_and_lists_for_clustering_are_one_line(write_experiment):
    spec = small_experiment(database_sizes=[100, 5000])
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(write_experiment(spec))])
    assert result.exit_code == 2 and "5000 is larger than the database" in result.output
    spec = small_experiment(database_sizes=[100], dataset={**small_experiment()["dataset"],
                                                           "sizes": [200]})
    with pytest.raises(BenchError, match="give database sizes once"):
        load_experiment(write_experiment(spec, "twice.yaml"))
    with pytest.raises(BenchError, match="distinct"):
        load_experiment(write_experiment(small_experiment(threads=[1, 1]), "t.yaml"))


def test_growth_exponents_recover_a_power_law() -> None:
    import pandas as pd

    from bench.process.scale import growth_exponents

    n = np.array([1_000, 10_000, 100_000])
    df = pd.DataFrame({"line": "x", "k": 10, "n_database": n, "search_s": 2e-6 * n**0.5,
                       "build_time_s": 1e-5 * n**1.2, "index_mb": 1e-4 * n, "score": 1.0})
    (row,) = growth_exponents(df).to_dict("records")
    assert row["search_time_exp"] == pytest.approx(0.5)
    assert row["build_time_exp"] == pytest.approx(1.2)
    assert row["memory_exp"] == pytest.approx(1.0)
    assert row["recall_exp"] == pytest.approx(0.0)
    assert row["sizes"] == 3 and row["search_time_exp_r2"] == pytest.approx(1.0)


def test_sweep_figures_size_metric_and_threads(write_experiment):
    import pandas as pd

    from bench.process import process_results

    spec = small_experiment(metric=["euclidean", "l1"], threads=[1, 2],
                            database_sizes=[250, 1000, 2000])
    spec["algorithms"] = spec["algorithms"][:1]  # faiss Flat only: 2 x 2 x 3 runs
    run_experiment(write_experiment(spec), RunOptions(progress=False))
    names = {p.name for p in process_results("small")}
    assert {"size_k10_euclidean.png", "size_k10_l1.png", "growth_exponents.png",
            "metrics_k10.png", "threads_k10.png"} <= names
    table = pd.read_csv(os.path.join(os.environ["BENCH_PLOTS"], "small", "tables",
                                     "growth_exponents.csv"))
    assert len(table) == 4 and (table["sizes"] == 3).all()  # 2 metrics x 2 thread counts
    assert (table["recall_exp"].abs() < 1e-9).all()  # exact search: recall 1.0 at every size
    assert table["configuration"].str.contains("thr").all()
    runs = pd.read_csv(os.path.join(os.environ["BENCH_PLOTS"], "small", "runs.csv"))
    # every series names its size, metric and thread count: no curve joins two of them
    assert runs["series"].nunique() == 12


def test_galleries_pick_the_run_of_their_own_size() -> None:
    import pandas as pd

    from bench.process.galleries import choose_run

    df = pd.DataFrame({"extractor": [None, None], "feature_set": ["vectors@n100", "vectors@n900"],
                       "neighbors_file": ["a.npy", "b.npy"], "k": [10, 10],
                       "score": [0.5, 0.9], "qps": [1.0, 1.0], "id": ["a", "b"],
                       "label": ["x", "x"], "config": ["x", "x"], "series": ["x", "x"]})
    assert choose_run(df, "vectors@n100", None)["id"] == "a"
    assert choose_run(df, "vectors@n900", None)["id"] == "b"
    assert choose_run(df.drop(columns="feature_set"), "vectors", None)["id"] == "b"
