"""Retrieval evaluation: relevance judges, feature files, composed queries, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_digits

from bench.config.sections import QuerySample, RelevanceOptions
from bench.core.errors import BenchError
from bench.core.items import Item
from bench.core.options import validate_section
from bench.datasets.base import DatasetContext
from bench.extractors.precomputed import FeatureFile, read_feature_file
from bench.run.runner import RunOptions, run_experiment
from bench.scoring.judges import make_judge, read_groups


def _loaded(tmp_path: Path, relevance: object, ks: list[int], query_sample: dict | None = None,
            ) -> SimpleNamespace:
    """The sections validated as load_experiment validates them (typed models)."""
    src = tmp_path / "exp.yaml"
    sample = (None if query_sample is None
              else validate_section(QuerySample, {"seed": 3, **query_sample}, src, "query_sample"))
    exp = SimpleNamespace(relevance=validate_section(RelevanceOptions, relevance, src, "relevance"),
                          query_sample=sample, ks=ks, seed=3, dataset=SimpleNamespace(name="test"))
    return SimpleNamespace(experiment=exp, source=tmp_path / "exp.yaml", base_dir=tmp_path)


def _fs(db: list[Item], queries: list[Item]) -> SimpleNamespace:
    # vectors too: identity judges score pooled µAP from exact distances
    rng = np.random.default_rng(0)
    return SimpleNamespace(database_items=db, query_items=queries, metric="euclidean",
                           database=rng.standard_normal((len(db), 2)).astype(np.float32),
                           queries=rng.standard_normal((len(queries), 2)).astype(np.float32))


def _composed_items() -> tuple[list[Item], list[Item]]:
    caps = ["red dress", "red dress", "jeans", "red dress", "blue shirt"]
    db = [Item(id=f"d{i}", text=c) for i, c in enumerate(caps)]
    queries = [Item(id="q0", text="red dress", attrs={"source": "d0", "category": "dress"}),
               Item(id="q1", text="jeans", attrs={"source": "d2", "category": "jeans"}),
               Item(id="q2", text="blue shirt", attrs={"source": "d1", "category": "dress"})]
    return db, queries


def test_caption_relevance_with_source_exclusion_by_hand(tmp_path: Path) -> None:
    db, queries = _composed_items()
    rel = {"mode": "labels", "match": "text", "exclude_source": True, "at": [1, 3]}
    judge = make_judge(_loaded(tmp_path, rel, [4]), _fs(db, queries))
    ids = np.array([[0, 2, 1, 3], [2, 0, 4, 1], [4, 1, 0, 2]])
    out = judge.scores(ids, 4)
    # q0: source d0 removed -> [2, 1, 3]: relevant at ranks 2, 3 of 2 relevant (d1, d3)
    # q1: the only "jeans" is its own source -> no relevant item, left out of every mean
    # q2: source d1 removed -> [4, 0, 2]: relevant at rank 1 of 1
    assert out["queries_without_relevant"] == 1
    assert out["hit_rate@1"] == pytest.approx(0.5)
    assert out["hit_rate@3"] == out["hit_rate"] == pytest.approx(1.0)
    assert out["recall@1"] == pytest.approx(0.5)
    assert out["recall@3"] == pytest.approx(1.0)
    assert out["precision@1"] == pytest.approx(0.5)
    assert out["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert out["map"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2)
    assert out["pr_curve"]["precision"] == pytest.approx([0.5, 0.5, 0.5])
    assert out["pr_curve"]["recall"] == pytest.approx([0.5, 0.75, 1.0])
    assert out["pr_curve"]["ranks"] == [1, 2, 3]
    assert out["short_rankings"] == 0  # 3 remain after removing one of 4
    assert out["hit_rate_by_category"] == {"dress": 1.0, "jeans": None}
    assert "relevant_per_query" in out and "queries_without_original" not in out


def test_exclusion_without_spare_results_reports_short_rankings(tmp_path: Path) -> None:
    db, queries = _composed_items()
    judge = make_judge(_loaded(tmp_path, {"mode": "labels", "match": "text",
                                          "exclude_source": True}, [3]), _fs(db, queries))
    out = judge.scores(np.array([[0, 2, 1], [2, 0, 4], [4, 1, 0]]), 3)
    assert out["short_rankings"] == 3  # every source was in the top 3: ask for k + 1


def test_labels_ties_and_multi_label_queries(tmp_path: Path) -> None:
    db = [Item(id="a", labels=("cat",)), Item(id="b", labels=("dog", "cat")),
          Item(id="c", labels=("car",)), Item(id="d", labels=("dog",))]
    queries = [Item(id="q0", labels=("cat", "dog")), Item(id="q1", labels=("car",))]
    judge = make_judge(_loaded(tmp_path, "labels", [1, 2]), _fs(db, queries))
    # b holds both of q0's labels: one relevant item, not two
    out = judge.scores(np.array([[1, 2], [3, 2]]), 2)
    assert out["relevant_per_query"] == pytest.approx((3 + 1) / 2)
    assert out["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert out["recall@2"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["hit_rate@1"] == pytest.approx(0.5)
    assert out["map"] == pytest.approx(((1 / 1) / 3 + (1 / 2) / 1) / 2)


def test_identity_judge_keeps_the_copy_detection_keys(tmp_path: Path) -> None:
    db = [Item(id="o1", identity="x:1"), Item(id="o2", identity="x:2"), Item(id="f", identity=None)]
    queries = [Item(id="q1", identity="x:1", attrs={"attack": "jpeg_50", "family": "compression"}),
               Item(id="q2", identity="x:2", attrs={"attack": "crop_50", "family": "geometry"}),
               Item(id="q3", identity="x:9", attrs={"attack": "crop_50", "family": "geometry"})]
    judge = make_judge(_loaded(tmp_path, "identity", [1, 2]), _fs(db, queries))
    out = judge.scores(np.array([[0, 2], [2, 1], [0, 1]]), 2)
    assert out["hit_rate"] == pytest.approx(1.0)  # q3 has no original: left out, counted
    assert out["hit_rate@1"] == pytest.approx(0.5)
    assert out["queries_without_original"] == 1
    assert out["hit_rate_by_attack"] == {"crop_50": 1.0, "jpeg_50": 1.0}
    assert out["hit_rate_by_family"] == {"compression": 1.0, "geometry": 1.0}
    # pooled view: q3's two predictions are false positives, not left out
    assert (out["positive_queries"], out["negative_queries"], out["predictions"]) == (2, 1, 6)
    assert out["pooled_pr"]["recall"][-1] == 1.0
    assert out["pooled_pr"]["precision"][-1] == pytest.approx(2 / 6, abs=1e-6)


def test_dedupe_before_the_cutoff(tmp_path: Path) -> None:
    db = [Item(id=f"d{i}", identity=s) for i, s in enumerate(["a", "a", "b", "a", "c"])]
    queries = [Item(id="q", identity="a")]
    judge = make_judge(_loaded(tmp_path, {"mode": "identity", "dedupe": True, "at": [2]}, [2]),
                       _fs(db, queries))
    out = judge.scores(np.array([[0, 1, 3, 2, 4]]), 5)
    # three copies of "a" collapse to one: ranking a, b, c; one distinct relevant identity
    assert out["precision@2"] == pytest.approx(0.5)
    assert out["recall@2"] == pytest.approx(1.0)
    plain = make_judge(_loaded(tmp_path, {"mode": "identity", "at": [2]}, [2]),
                       _fs(db, queries)).scores(np.array([[0, 1, 3, 2, 4]]), 5)
    assert plain["precision@2"] == pytest.approx(1.0)
    assert plain["recall@2"] == pytest.approx(2 / 3)


def test_groups_from_file_and_from_attrs(tmp_path: Path) -> None:
    db = [Item(id=f"d{i}") for i in range(4)]
    queries = [Item(id="q0", attrs={"relevant": ["d1", "d3"]}), Item(id="q1")]
    (tmp_path / "groups.json").write_text(json.dumps({"q0": ["d1", "d3"], "q1": ["d0"]}))
    (tmp_path / "groups.csv").write_text("q0,d1\nq0,d3\nq1,d0\n")
    assert read_groups(tmp_path / "groups.csv") == read_groups(tmp_path / "groups.json")
    ids = np.array([[3, 0, 1], [0, 1, 2]])
    from_file = make_judge(_loaded(tmp_path, {"mode": "groups", "file": "groups.csv"}, [3]),
                           _fs(db, queries)).scores(ids, 3)
    assert from_file["recall@3"] == pytest.approx(1.0)
    assert from_file["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    from_attrs = make_judge(_loaded(tmp_path, "groups", [3]), _fs(db, queries)).scores(ids, 3)
    assert from_attrs["queries_without_relevant"] == 1  # q1 lists nothing
    assert from_attrs["map"] == pytest.approx((1 + 2 / 3) / 2)


def test_query_sample_mean_and_std(tmp_path: Path) -> None:
    db = [Item(id=f"d{i}", labels=(str(i % 2),)) for i in range(4)]
    queries = [Item(id=f"q{i}", labels=(str(i % 2),)) for i in range(6)]
    ids = np.array([[0, 1]] * 6)  # hit@1 = 1 for even queries, 0 for odd
    full = make_judge(_loaded(tmp_path, "labels", [1], {"size": 6, "repeats": 3}),
                      _fs(db, queries)).scores(ids, 1)
    assert full["hit_rate@1"] == pytest.approx(0.5)
    assert full["hit_rate@1_std"] == 0.0  # every sample is the whole set
    sample = {"size": 4, "repeats": 5, "seed": 11, "replace": True}
    out = make_judge(_loaded(tmp_path, "labels", [1], sample), _fs(db, queries)).scores(ids, 1)
    rng = np.random.default_rng(11)
    means = [float((rng.choice(6, 4, replace=True) % 2 == 0).mean()) for _ in range(5)]
    assert out["hit_rate@1"] == pytest.approx(np.mean(means))
    assert out["hit_rate@1_std"] == pytest.approx(np.std(means, ddof=1))
    assert out["hit_rate_std"] == out["hit_rate@1_std"]
    assert out["query_sample"]["repeats"] == 5
    with pytest.raises(BenchError, match="larger than the 6 queries"):
        make_judge(_loaded(tmp_path, "labels", [1], {"size": 7}), _fs(db, queries))


def test_bad_relevance_options_name_the_field(tmp_path: Path) -> None:
    db, queries = _composed_items()
    with pytest.raises(BenchError, match=r"relevance\.exclude_sourc: unknown key"):
        make_judge(_loaded(tmp_path, {"mode": "labels", "exclude_sourc": True}, [1]),
                   _fs(db, queries))
    with pytest.raises(BenchError, match=r"relevance: Input should be 'knn'"):
        make_judge(_loaded(tmp_path, "nearest", [1]), _fs(db, queries))
    with pytest.raises(BenchError, match=r"query_sample\.size"):
        make_judge(_loaded(tmp_path, "labels", [1], {"repeats": 2}), _fs(db, queries))
    with pytest.raises(BenchError, match="no query item has a 'source'"):
        make_judge(_loaded(tmp_path, {"mode": "labels", "match": "text", "exclude_source": True},
                           [1]), _fs(db, [Item(id="q", text="jeans")]))
    assert make_judge(_loaded(tmp_path, "knn", [1]), _fs(db, queries)) is None


# ----------------------------------------------------------------------------- files


def _write_all_formats(folder: Path, ids: list[str], x: np.ndarray) -> dict[str, FeatureFile]:
    """Every supported format; the parquet ones only where pyarrow (the extra) is installed."""
    import h5py

    np.save(folder / "f.npy", x)
    (folder / "order.json").write_text(json.dumps(ids))
    np.savez(folder / "f.npz", features=x, ids=np.array(ids))
    with h5py.File(folder / "f.h5", "w") as f:
        f["emb"] = x
        f["other"] = np.zeros(3)
    np.savetxt(folder / "f.tsv", np.column_stack([np.array(ids), x.astype(str)]), fmt="%s",
               delimiter="\t")
    specs = {
        "npy": FeatureFile(path="f.npy", ids="order.json"),
        "npz": FeatureFile(path="f.npz"),
        "hdf5": FeatureFile(path="f.h5", key="emb", ids="order.json"),
        "text": FeatureFile(path="f.tsv", id_column=0),
    }
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return specs
    pq.write_table(pa.table({"id": ids, "vec": list(x)}), folder / "f.parquet")
    pq.write_table(pa.table({"id": ids, **{f"c{j}": x[:, j] for j in range(x.shape[1])}}),
                   folder / "g.parquet")
    specs["parquet-list"] = FeatureFile(path="f.parquet", key="vec", id_column="id")
    specs["parquet-columns"] = FeatureFile(path="g.parquet", columns=[f"c{j}" for j in range(3)],
                                           id_column="id")
    return specs


def _check_formats(tmp_path: Path) -> set[str]:
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    ids = [f"img{i}" for i in range(5)]
    specs = _write_all_formats(tmp_path, ids, x)
    for name, spec in specs.items():
        got_ids, feats = read_feature_file(spec, tmp_path)
        assert got_ids == ids, name
        np.testing.assert_allclose(np.asarray(feats, np.float32), x, rtol=1e-6, err_msg=name)
    return set(specs)


def test_every_format_reads_the_same_ids_and_features(tmp_path: Path) -> None:
    assert {"npy", "npz", "hdf5", "text"} <= _check_formats(tmp_path)
    got_ids, _ = read_feature_file(FeatureFile(path="f.npy", prefix="img:"), tmp_path)
    assert got_ids == [f"img:{i}" for i in range(5)]  # no ids: row numbers


def test_parquet_formats_read_the_same_ids_and_features(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="parquet needs the parquet extra (pyarrow)")
    assert {"parquet-list", "parquet-columns"} <= _check_formats(tmp_path)


def test_pickles_and_bad_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "f.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(BenchError, match="refusing to read a pickle file: unpickling runs"):
        read_feature_file(FeatureFile(path="f.pkl"), tmp_path)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BenchError, match="Python objects, which only unpickling"):
        read_feature_file(FeatureFile(path="obj.npy"), tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "ids.json").write_text('["a", "b"]')
    with pytest.raises(BenchError, match="2 ids for 3 feature rows"):
        read_feature_file(FeatureFile(path="x.npy", ids="ids.json"), tmp_path)
    (tmp_path / "dup.json").write_text('["a", "b", "a"]')
    with pytest.raises(BenchError, match="id 'a' appears more than once"):
        read_feature_file(FeatureFile(path="x.npy", ids="dup.json"), tmp_path)
    with pytest.raises(BenchError, match="not found"):
        read_feature_file(FeatureFile(path="missing.npz"), tmp_path)


def test_precomputed_extractor_looks_features_up_by_id(tmp_path: Path) -> None:
    from bench.extractors.precomputed import PrecomputedExtractor, PrecomputedOptions
    from bench.features.store import extract_features

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "a.npz", features=x[:2], ids=np.array(["p", "q"]))
    np.savez(tmp_path / "b.npz", features=x[2:], ids=np.array(["r", "s"]))
    ext = PrecomputedExtractor(PrecomputedOptions(files=[
        FeatureFile(path=str(tmp_path / "a.npz")), FeatureFile(path=str(tmp_path / "b.npz"))]))
    assert ext.dim == 3
    items = [Item(id="s"), Item(id="zz"), Item(id="p")]
    got = extract_features(ext, items, cache_dir=tmp_path / "cache", dataset_fingerprint="t",
                           progress=False)
    np.testing.assert_array_equal(got.kept, [0, 2])
    np.testing.assert_array_equal(got.features, x[[3, 0]])
    assert got.skipped == [("zz", "no precomputed feature for id 'zz'")]
    clash = PrecomputedExtractor(PrecomputedOptions(files=[
        FeatureFile(path=str(tmp_path / "a.npz")), FeatureFile(path=str(tmp_path / "a.npz"))]))
    with pytest.raises(BenchError, match="id 'p' is also in"):
        _ = clash.dim


# ------------------------------------------------------------------- datasets, end to end


def _digits_files(folder: Path) -> None:
    """Real small data: sklearn's digits; label = digit class (about 100 positives each)."""
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    qi, di = perm[:50], perm[50:850]
    np.save(folder / "db.npy", x[di].astype(np.float32))
    np.save(folder / "q.npy", x[qi].astype(np.float32))
    (folder / "db.json").write_text(json.dumps([f"d{i}" for i in di]))
    (folder / "q.json").write_text(json.dumps([f"q{i}" for i in qi]))
    (folder / "db_items.jsonl").write_text("\n".join(
        json.dumps({"id": f"d{i}", "labels": [f"digit:{y[i]}"]}) for i in di))
    (folder / "q_items.json").write_text(json.dumps(
        [{"id": f"q{i}", "labels": f"digit:{y[i]}", "category": f"digit:{y[i]}"} for i in qi]))


def test_feature_files_experiment_end_to_end(tmp_path: Path, write_experiment) -> None:
    _digits_files(tmp_path)
    spec = {
        "name": "own-files", "metric": "euclidean", "k": [1, 10], "runs": 1,
        "dataset": {"name": "feature-files",
                    "database": {"path": "db.npy", "ids": "db.json", "items": "db_items.jsonl"},
                    "queries": {"path": "q.npy", "ids": "q.json", "items": "q_items.json"}},
        "relevance": "labels",
        "query_sample": {"size": 20, "repeats": 4},
        "algorithms": [{"algorithm": "bruteforce"}],
    }
    results = run_experiment(write_experiment(spec), RunOptions(progress=False,
                                                                 executor="inline"))
    runs = {r["k"]: r for r in results.data["runs"]}
    assert all(r["status"] == "ok" for r in runs.values())
    r10 = runs[10]
    # the same numbers straight from the files, with a loop
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    qi, di = perm[:50], perm[50:850]
    d2 = ((x[qi, None, :] - x[None, di, :]) ** 2).sum(-1)
    top = np.argsort(d2, axis=1, kind="stable")[:, :10]
    rel = y[di][top] == y[qi][:, None]
    assert 0.85 < rel.mean() <= 1.0  # 1-NN on digits is good; a broken judge is ~0.1
    assert r10["precision@10"] == pytest.approx(rel.mean(), abs=0.06)  # sampled queries
    assert r10["hit_rate@1_std"] >= 0.0 and len(r10["pr_curve"]["precision"]) == 10
    assert set(r10["hit_rate_by_category"]) == {f"digit:{d}" for d in set(y[qi])}


def test_composed_dataset_baseline_and_precomputed(tmp_path: Path) -> None:
    from bench.datasets.retrieval import Composed, ComposedOptions

    rng = np.random.default_rng(1)
    img = rng.standard_normal((4, 6)).astype(np.float32)
    txt = rng.standard_normal((2, 6)).astype(np.float32)
    np.savez(tmp_path / "img.npz", features=img, ids=np.array(["a", "b", "c", "d"]))
    np.savez(tmp_path / "txt.npz", features=txt, ids=np.array(["q1", "q0"]))
    (tmp_path / "db.json").write_text(json.dumps(
        [{"id": i, "caption": c} for i, c in zip("abcd", ["red dress", "blue dress",
                                                          "red dress", "jeans"], strict=True)]))
    (tmp_path / "q.jsonl").write_text(
        '{"id": "q0", "source": "b", "modifier": "make it red", "target": "red dress"}\n'
        '{"id": "q1", "source": "a", "modifier": "denim", "targets": ["d"]}\n')
    ctx = DatasetContext(seed=0, cache_dir=tmp_path / "cache", base_dir=tmp_path)
    opts = ComposedOptions.model_validate({
        "database": {"path": "img.npz"}, "database_items": "db.json", "queries": "q.jsonl",
        "baseline": {"text_features": {"path": "txt.npz"}, "text_weight": 0.25}})
    data = Composed(opts, ctx).load()

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    want0 = 0.75 * unit(img[1]) + 0.25 * unit(txt[1])
    np.testing.assert_allclose(data.queries[0], want0, rtol=1e-5)
    q0, q1 = data.query_items
    assert (q0.text, q0.attrs["source"], q0.attrs["modifier"]) == ("red dress", "b", "make it red")
    assert q1.attrs["relevant"] == ["d"] and data.database_items[0].text == "red dress"
    np.savez(tmp_path / "composed.npz", features=np.ones((2, 6)), ids=np.array(["q0", "q1"]))
    pre = Composed(ComposedOptions.model_validate({
        "database": {"path": "img.npz"}, "database_items": "db.json", "queries": "q.jsonl",
        "query_features": {"path": "composed.npz"}}), ctx).load()
    np.testing.assert_array_equal(pre.queries, np.ones((2, 6), np.float32))
    with pytest.raises(ValueError, match="exactly one of query_features"):
        ComposedOptions.model_validate({"database": {"path": "img.npz"},
                                        "database_items": "db.json", "queries": "q.jsonl"})
    (tmp_path / "bad.jsonl").write_text('{"id": "q9", "source": "zz", "target": "x"}\n')
    with pytest.raises(BenchError, match="needs a 'source' that is a database id"):
        Composed(ComposedOptions.model_validate({
            "database": {"path": "img.npz"}, "database_items": "db.json",
            "queries": "bad.jsonl", "query_features": {"path": "composed.npz"}}), ctx).load()


README_YAML = """\
name: my-retrieval
dataset:
  name: feature-files
  database: {path: images.npz, items: images.jsonl}   # arrays "features" and "ids"
  queries: {path: captions.h5, key: emb, ids: caption_ids.json, items: captions.jsonl}
metric: angular
k: [1, 5, 10]
relevance: labels
algorithms: [{algorithm: faiss, build: {factory: Flat}}]
"""


def test_the_readme_example_runs(tmp_path: Path) -> None:
    import h5py

    x, y = load_digits(return_X_y=True)
    x = x + 1.0  # no all-zero rows: angular needs a direction
    np.savez(tmp_path / "images.npz", features=x[100:600], ids=np.array(
        [f"img{i}" for i in range(100, 600)]))
    with h5py.File(tmp_path / "captions.h5", "w") as f:
        f["emb"] = x[:100]
    (tmp_path / "caption_ids.json").write_text(json.dumps([f"cap{i}" for i in range(100)]))
    (tmp_path / "images.jsonl").write_text("\n".join(
        json.dumps({"id": f"img{i}", "labels": [str(y[i])]}) for i in range(100, 600)))
    (tmp_path / "captions.jsonl").write_text("\n".join(
        json.dumps({"id": f"cap{i}", "labels": [str(y[i])]}) for i in range(100)))
    (tmp_path / "my.yaml").write_text(README_YAML)
    assert len(README_YAML.splitlines()) < 10
    data = run_experiment(tmp_path / "my.yaml", RunOptions(progress=False,
                                                           executor="inline")).data
    run = next(r for r in data["runs"] if r["k"] == 10)
    assert run["status"] == "ok" and run["precision@10"] > 0.8 and run["hit_rate@1"] > 0.8
