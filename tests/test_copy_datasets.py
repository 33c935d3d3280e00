"""DISC21 and Copydays loaders on small folders in the published layouts, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rich.console import Console

from bench.core.errors import BenchError
from bench.datasets import DatasetContext, registry
from bench.datasets.prepare.attacks import attack_image
from bench.datasets.prepare.attacks import save_png as _save_png
from bench.datasets.samples import procedural_image


def save_png(img, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(img, path)


def _load(name: str, tmp_path: Path, **options):
    cls = registry.get(name)
    ctx = DatasetContext(seed=1, cache_dir=tmp_path / "cache", base_dir=tmp_path)
    return cls(cls.Options.model_validate(options), ctx).load()


def _attacked(index: int, attack: str):
    import numpy as np

    return attack_image(procedural_image(index, 3, 64), attack, np.random.default_rng(index))


def make_disc21(root: Path, header: bool = True) -> Path:
    """6 references, 5 dev queries (2 copies, 2 listed negatives, 1 unlisted), 12 training."""
    for i in range(6):
        save_png(procedural_image(i, 3, 64), root / "references" / f"R{i:06d}.png")
    save_png(_attacked(2, "jpeg_50"), root / "dev_queries" / "Q00000.png")
    save_png(_attacked(4, "rotate_5"), root / "dev_queries" / "Q00001.png")
    for j, src in ((2, 50), (3, 51), (4, 52)):
        save_png(_attacked(src, "crop_10"), root / "dev_queries" / f"Q{j:05d}.png")
    for t in range(12):
        save_png(procedural_image(100 + t, 3, 64), root / "train" / f"T{t:06d}.png")
    rows = ["Q00000,R000002", "Q00001,R000004", "Q00002,", "Q00003,"]
    (root / "dev_ground_truth.csv").write_text(
        "\n".join((["query_id,reference_id"] if header else []) + rows) + "\n")
    return root


def test_disc21_layout_identities_and_subsets(tmp_path):
    root = make_disc21(tmp_path / "disc21")
    d = _load("disc21", tmp_path, root=str(root), background=5)
    assert [q.id for q in d.queries] == ["disc21:Q00000", "disc21:Q00001", "disc21:Q00002",
                                        "disc21:Q00003"]  # Q00004 is not in the CSV
    assert d.queries[0].identity == "disc21:R000002" == d.database[2].identity
    assert d.queries[2].identity == "disc21-query:Q00002"
    assert not {q.identity for q in d.queries[2:]} & {r.identity for r in d.database}
    assert len(d.background) == 5 and d.description["true_pairs"] == 2
    both = _load("disc21", tmp_path, root=str(root), background=5, training=4)
    assert [t.id for t in both.training] == [f"disc21-training:T{t:06d}" for t in range(5, 9)]
    assert not {t.id for t in both.training} & {b.id for b in both.background}
    every = _load("disc21", tmp_path, root=str(root), subset="all")
    assert len(every.queries) == 5 and every.queries[4].identity == "disc21-query:Q00004"
    # a subset of references keeps the true matches of the chosen queries
    small = _load("disc21", tmp_path, root=str(root), n_references=1, n_queries=2)
    assert sorted(r.id for r in small.database) == [
        "disc21:R000000", "disc21:R000002", "disc21:R000004"]


def test_disc21_bad_ground_truth_is_one_error(tmp_path):
    root = make_disc21(tmp_path / "disc21", header=False)
    assert len(_load("disc21", tmp_path, root=str(root)).queries) == 4  # no header is fine
    text = (root / "dev_ground_truth.csv").read_text()
    (root / "dev_ground_truth.csv").write_text("\ufeffquery_id,reference_id\n" + text
                                               + "Q00099,R000001\n")
    d = _load("disc21", tmp_path, root=str(root))  # a BOM header is still the header
    assert len(d.queries) == 4 and d.description["listed_queries_without_image"] == 1
    assert d.description["first_missing"] == ["Q00099"]
    (root / "dev_ground_truth.csv").write_text("Q00000,R000009\n")
    with pytest.raises(BenchError, match="R000009, which is not among the reference images"):
        _load("disc21", tmp_path, root=str(root))
    (root / "dev_ground_truth.csv").write_text("Q00000,R000001\nQ00000,R000002\n")
    with pytest.raises(BenchError, match=r"dev_ground_truth.csv:2: query Q00000 has two"):
        _load("disc21", tmp_path, root=str(root))
    with pytest.raises(BenchError, match="none of final_queries"):
        (root / "final_ground_truth.csv").write_text("Q50000,\n")
        _load("disc21", tmp_path, root=str(root), split="final")


def test_disc21_folder_runs_end_to_end(tmp_path):
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    root = make_disc21(tmp_path / "disc21")
    spec = {"name": "disc", "seed": 1,
            "dataset": {"name": "disc21", "root": str(root), "background": 12},
            "extractor": {"name": "dhash", "hash_size": 8}, "metric": "hamming",
            "k": [1, 3], "runs": 1, "timeout": 60,
            "relevance": {"mode": "identity",
                          "pooled": {"normalise": {"n": 3}, "cap": 10}},
            "algorithms": [{"algorithm": "bruteforce", "name": "exact"},
                           {"algorithm": "faiss-binary", "name": "bflat",
                            "build": {"index_binary_factory": "BFlat"}}]}
    path = tmp_path / "disc.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False, workers=1),
                             console)
    data = load_results(results.path)
    runs = data["runs"]
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs), runs
    assert data["dataset"]["feature_sets"]["dhash"]["n_background"] == 12
    for r in runs:
        assert (r["positive_queries"], r["negative_queries"], r["true_pairs"]) == (2, 2, 2)
        assert r["predictions"] == min(10, 4 * r["k"])
        # mild attacks of procedural images: dHash finds both originals first
        assert r["hit_rate@1"] == 1.0 and r["accuracy@1"] == 1.0
        assert 0 < r["uap"] <= 1 and 0 < r["uap_norm"] <= 1
    exact = {r["k"]: r for r in runs if r["label"] == "exact"}
    flat = {r["k"]: r for r in runs if r["label"] == "bflat"}
    assert exact[3]["uap"] == pytest.approx(flat[3]["uap"])


def make_copydays(root: Path) -> Path:
    for s in range(3):  # series 2000, 2001, 2002: one original each
        name = f"200{s}00"
        save_png(procedural_image(s, 5, 64), root / "original" / f"{name}.png")
        save_png(_attacked(s, "jpeg_10"), root / "jpegqual" / "10" / f"{name}.png")
        save_png(_attacked(s, "jpeg_50"), root / "jpegqual" / "50" / f"{name}.png")
        save_png(_attacked(s, "crop_20"), root / "crops" / "20" / f"{name}.png")
        for v in (1, 2):
            save_png(_attacked(s, "rotate_10"), root / "strong" / f"200{s}0{v}.png")
    for i in range(4):
        save_png(procedural_image(50 + i, 5, 64), root.parent / "distract" / f"{i}.png")
    return root


def test_copydays_blocks_identities_and_distractors(tmp_path):
    root = make_copydays(tmp_path / "copydays")
    d = _load("copydays", tmp_path, root=str(root), distractors=str(tmp_path / "distract"))
    assert len(d.database) == 3 + 4
    attacks = sorted({q.attrs["attack"] for q in d.queries})
    assert attacks == ["crops/20", "jpegqual/10", "jpegqual/50", "strong"]
    strong = [q for q in d.queries if q.attrs["attack"] == "strong"]
    assert len(strong) == 6 and {q.identity for q in strong} == {
        "copydays:2000", "copydays:2001", "copydays:2002"}
    assert {q.id for q in d.queries if q.attrs["attack"] == "jpegqual/50"} == {
        "copydays-jpegqual/50:200000", "copydays-jpegqual/50:200100",
        "copydays-jpegqual/50:200200"}
    only = _load("copydays", tmp_path, root=str(root), blocks=["jpegqual/50"])
    assert len(only.queries) == 3 and len(only.database) == 3
    with pytest.raises(BenchError, match="unknown block 'blur'"):
        _load("copydays", tmp_path, root=str(root), blocks=["blur"])
