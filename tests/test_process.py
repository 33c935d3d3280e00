"""`bench process` on hand-made results folders: ANN, identity (images) and labels (PR curves).

The folders are built here (results.json, items json, neighbour .npy files and
small PNG images drawn with Pillow), so these tests do not depend on the
runner, the image pipeline or the label metrics.
"""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from bench.core.errors import BenchError
from bench.process import process_results
from bench.process.distances import neighbour_distances
from bench.process.frame import ok_runs, runs_frame
from bench.process.galleries import GalleryOptions, gallery_outputs, select_queries
from bench.process.pareto import pareto_front
from bench.process.tiles import BORDER, GAP, PAD, THUMB
from bench.results import load_results

ENV = {"python": "3.11.2", "platform": "Linux-test", "cpu": "Test CPU", "cpu_count": 2,
       "memory_total_bytes": 8 * 2**30, "threads": 1, "packages": {"numpy": "2.0", "faiss": "1"},
       "blas": [{"internal_api": "openblas", "version": "0.3", "num_threads": 1}],
       "git_commit": "abc123", "env": {}}


def _results_dir(name: str) -> Path:
    folder = Path(os.environ["BENCH_RESULTS"]) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _plots(name: str) -> Path:
    return Path(os.environ["BENCH_PLOTS"]) / name


def _write(folder: Path, data: dict) -> None:
    (folder / "results.json").write_text(json.dumps(data, indent=1))


def _run(rid: str, label: str, build: dict, query: dict, k: int, *, recall: float, qps: float,
         build_time: float, mb: float, algorithm: str = "faiss", extractor: str | None = None,
         **more) -> dict:
    return {"id": rid, "extractor": extractor, "algorithm": algorithm, "label": label, "group": 0,
            "build_params": build, "query_params": query, "k": k, "mode": "batch", "threads": 1,
            "runs": 1, "n_queries": 100, "metric": "euclidean", "status": "ok", "error": None,
            "build_time_s": build_time, "index_uss_bytes": int(mb * 1e6), "index_bytes": None,
            "peak_rss_bytes": 10**8, "qps": qps, "search_time_s": 100 / qps,
            "latency_mean_ms": 1.0, "latency_p50_ms": 1.0, "latency_p95_ms": 2.0,
            "latency_p99_ms": 3.0, "repeats_s": [0.1], "recall": recall, "id_recall": recall,
            "recall_p5": recall, "recall_min": recall, "extra": {}, "finished": "t", **more}


IVF = {1: (0.55, 20000), 2: (0.72, 12000), 4: (0.86, 6500), 8: (0.94, 3500), 16: (0.985, 1800),
       32: (0.998, 950)}
HNSW = {8: ([0.80, 0.90, 0.955, 0.985, 0.995], [30000, 18000, 10000, 5500, 3000], 1.2, 3.0),
        16: ([0.86, 0.94, 0.975, 0.993, 0.999], [25000, 15000, 8000, 4300, 2300], 2.5, 5.0)}
EFS = [10, 20, 40, 80, 160]


def make_ann_results(name: str = "ann", schema: int = 1) -> Path:
    runs = []
    for k in (1, 10):
        bump = 0.01 if k == 1 else 0.0
        runs.append(_run(f"flat{k}", "faiss-flat", {"factory": "Flat"}, {}, k, recall=1.0,
                         qps=400, build_time=0.01, mb=2.0))
        for nprobe, (recall, qps) in IVF.items():
            runs.append(_run(f"ivf{nprobe}-{k}", "faiss-ivf", {"factory": "IVF64,Flat"},
                             {"nprobe": nprobe}, k, recall=min(1.0, recall + bump), qps=qps,
                             build_time=0.3, mb=2.2))
        for m, (recalls, qpss, bt, mb) in HNSW.items():
            for ef, recall, qps in zip(EFS, recalls, qpss, strict=True):
                runs.append(_run(f"h{m}-{ef}-{k}", "hnswlib", {"M": m, "ef_construction": 100},
                                 {"ef": ef}, k, recall=min(1.0, recall + bump), qps=qps,
                                 build_time=bt, mb=mb, algorithm="hnswlib"))
        runs.append({"id": f"annoy{k}", "extractor": None, "algorithm": "annoy", "label": "annoy",
                     "group": 3, "build_params": {"n_trees": 10}, "query_params": {}, "k": k,
                     "mode": "batch", "threads": 1, "runs": 1, "n_queries": 100,
                     "metric": "euclidean", "status": "timeout", "stage": "build",
                     "error": "build exceeded 60 s", "finished": "t"})
    folder = _results_dir(name)
    _write(folder, {
        "schema": schema, "name": name, "created": "2024-01-01T00:00:00", "updated": "x",
        "experiment": {"name": name, "description": "hand-made ANN results", "seed": 3,
                       "metric": "euclidean", "k": [1, 10], "relevance": "knn",
                       "mode": "batch", "threads": 1, "runs": 1},
        "experiment_source": "/nowhere/ann.yaml", "executor": "local", "environment": ENV,
        "dataset": {"name": "synthetic", "options": {"n": 2000}, "fingerprint": "f",
                    "feature_sets": {"vectors": {"n_database": 2000, "n_queries": 100, "dim": 16,
                                                 "dtype": "float32", "fingerprint": "fv",
                                                 "ground_truth": "exact search (cached)",
                                                 "sanity_exact_recall": 1.0, "skipped": []}}},
        "runs": runs,
    })
    return folder


# ----------------------------------------------------------------------------- identity data

ATTACKS = [("jpeg_50", "compression"), ("crop_10", "crop"), ("rotate_5", "rotation"),
           ("text_10", "text")]
N_ORIG, N_DISTRACT, K = 6, 6, 5


def _picture(i: int, path: Path, attack: str | None = None) -> None:
    rng = np.random.default_rng(i)
    img = Image.new("RGB", (96, 64), tuple(int(v) for v in rng.integers(30, 220, 3)))
    draw = ImageDraw.Draw(img)
    draw.ellipse((10 + 5 * i, 8, 50 + 5 * i, 56), fill=tuple(int(v) for v in rng.integers(0, 255,
                                                                                           3)))
    if attack == "rotate_5":
        img = img.rotate(5)
    elif attack == "crop_10":
        img = img.crop((5, 3, 91, 61)).resize((96, 64))
    elif attack == "text_10":
        ImageDraw.Draw(img).text((4, 4), "meme", fill=(255, 255, 255))
    img.save(path)


def identity_neighbours(loose: bool) -> np.ndarray:
    """(24, K) ids: rank 1 is the original except for rotate_5 (original at rank 2); the
    text_10 query of identity 0 (and, when loose, every crop_10) misses it entirely."""
    rows = []
    for i in range(N_ORIG):
        for attack, _ in ATTACKS:
            others = [j for j in range(N_ORIG + N_DISTRACT) if j != i]
            row = [i] + others[: K - 1]
            if attack == "rotate_5":
                row = [N_ORIG + i, i] + [j for j in others if j != N_ORIG + i][: K - 2]
            if attack == "text_10" and i == 0 or loose and attack == "crop_10":
                row = others[:K]
            rows.append(row)
    return np.array(rows, dtype=np.int64)


def _hit_rates(ids: np.ndarray, k: int, queries: list[dict], db: list[dict]) -> dict:
    by_attack: dict[str, list[int]] = {}
    by_family: dict[str, list[int]] = {}
    hits = []
    for row, q in zip(ids, queries, strict=True):
        hit = int(any(db[j]["identity"] == q["identity"] for j in row[:k]))
        hits.append(hit)
        by_attack.setdefault(q["attrs"]["attack"], []).append(hit)
        by_family.setdefault(q["attrs"]["family"], []).append(hit)
    return {"hit_rate": float(np.mean(hits)), "queries_without_original": 0,
            "hit_rate_by_attack": {a: float(np.mean(v)) for a, v in by_attack.items()},
            "hit_rate_by_family": {f: float(np.mean(v)) for f, v in by_family.items()}}


def make_identity_results(name: str = "ident", *, missing_image: bool = True,
                          with_distances: bool = True) -> Path:
    folder = _results_dir(name)
    images = folder.parent.parent / f"{name}-images"
    images.mkdir(parents=True, exist_ok=True)
    db = []
    for j in range(N_ORIG + N_DISTRACT):
        path = images / f"db{j}.png"
        _picture(j, path)
        ident = f"bsds:{j}" if j < N_ORIG else f"flickr:{j}"
        db.append({"id": ident, "identity": ident, "path": str(path), "text": None,
                   "labels": [], "attrs": {}})
    queries = []
    for i in range(N_ORIG):
        for attack, family in ATTACKS:
            path = images / f"q{i}_{attack}.png"
            _picture(i, path, attack)
            queries.append({"id": f"bsds:{i}/{attack}", "identity": f"bsds:{i}",
                            "path": str(path), "text": None, "labels": [],
                            "attrs": {"attack": attack, "family": family}})
    if missing_image:
        (images / "db7.png").unlink()
    (folder / "items").mkdir(exist_ok=True)
    (folder / "items" / "dhash.json").write_text(json.dumps({"database": db, "queries": queries}))
    (folder / "neighbors").mkdir(exist_ok=True)
    runs = []
    # what the run stage saves for the galleries: exact distances of the returned ids and
    # of each query's original (features made up here, the distances derived from them)
    rng = np.random.default_rng(0)
    db_x = rng.random((len(db), 8))
    q_x = rng.random((len(queries), 8))
    originals = np.array([int(q["identity"].split(":")[1]) for q in queries])
    np.save(folder / "items" / "dhash.original_dist.npy",
            np.linalg.norm(db_x[originals] - q_x, axis=1).astype(np.float32))
    for label, build, query, loose, qps in (("faiss-flat", {"factory": "BFlat"}, {}, False, 900),
                                            ("faiss-ivf", {"factory": "BIVF4"}, {"nprobe": 1},
                                             True, 5000)):
        full = identity_neighbours(loose)
        for k in (1, K):
            rid = f"{label}-{k}"
            np.save(folder / "neighbors" / f"{rid}.npy", full[:, :k])
            saved = {}
            if with_distances:
                dist = np.linalg.norm(db_x[full[:, :k]] - q_x[:, None, :], axis=2)
                np.save(folder / "neighbors" / f"{rid}.dist.npy", dist.astype(np.float32))
                saved = {"distances_file": f"neighbors/{rid}.dist.npy"}
            runs.append(_run(rid, label, build, query, k, recall=0.9, qps=qps, build_time=0.05,
                             mb=0.1, extractor="dhash", neighbors_file=f"neighbors/{rid}.npy",
                             **saved, **_hit_rates(full, k, queries, db)))
    _write(folder, {
        "schema": 1, "name": name, "created": "c", "updated": "u",
        "experiment": {"name": name, "seed": 11, "metric": "euclidean", "k": [1, K],
                       "relevance": "identity", "mode": "batch", "threads": 1, "runs": 1},
        "environment": ENV, "executor": "local",
        "dataset": {"name": "copydetect", "options": {}, "fingerprint": "f", "feature_sets": {
            "dhash": {"n_database": len(db), "n_queries": len(queries), "dim": 8,
                      "dtype": "float32", "fingerprint": "fpident", "skipped": [],
                      "items_file": "items/dhash.json",
                      "original_distances_file": "items/dhash.original_dist.npy"}}},
        "runs": runs,
    })
    return folder


def make_label_results(name: str = "labels") -> Path:
    folder = _results_dir(name)
    labels = ["cat", "dog", "car"]
    db = [{"id": f"d{j}", "identity": None, "path": None, "text": f"a photo of a {labels[j % 3]}",
           "labels": [labels[j % 3]], "attrs": {}} for j in range(9)]
    queries = [{"id": f"q{i}", "identity": None, "path": None, "text": f"find the {labels[i % 3]}",
                "labels": [labels[i % 3]], "attrs": {}} for i in range(6)]
    (folder / "items").mkdir(exist_ok=True)
    (folder / "items" / "clip.json").write_text(json.dumps({"database": db, "queries": queries}))
    (folder / "neighbors").mkdir(exist_ok=True)
    ids = np.array([[i % 3, (i + 1) % 3, 3 + i % 3] for i in range(6)], dtype=np.int64)
    np.save(folder / "neighbors" / "r1.npy", ids)
    runs = []
    for rid, label, slope in (("r1", "faiss-flat", 0.2), ("r2", "faiss-ivf", 0.4)):
        recall = np.linspace(0.05, 1.0, 12)
        pr = {"precision": (1.0 - slope * recall).tolist(), "recall": recall.tolist()}
        runs.append(_run(rid, label, {}, {}, 3, recall=0.8, qps=1000.0, build_time=0.1, mb=1.0,
                         extractor="clip", pr_curve=pr, map=0.9 - slope,
                         neighbors_file="neighbors/r1.npy"))
    _write(folder, {
        "schema": 1, "name": name, "experiment": {"name": name, "seed": 1, "relevance": "labels",
                                                  "metric": "angular", "k": 3},
        "dataset": {"name": "coco", "feature_sets": {"clip": {"items_file": "items/clip.json",
                                                              "fingerprint": "none"}}},
        "runs": runs,
    })
    return folder


# ----------------------------------------------------------------------------- helpers


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"])
        if a.get("id"):
            self.ids.append(a["id"])


def _parse_report(path: Path) -> _Images:
    parser = _Images()
    parser.feed(path.read_text())
    return parser


def _names(written: list[Path], out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in written}


def _is_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


# ----------------------------------------------------------------------------- ANN


def test_ann_results_give_plots_tables_and_report():
    make_ann_results()
    written = process_results("ann")
    out = _plots("ann")
    names = _names(written, out)
    for k in (1, 10):
        for stem in (f"recall_qps_k{k}", f"build_time_k{k}", f"index_memory_k{k}",
                     f"recall_vs_nprobe_k{k}", f"recall_vs_ef_k{k}"):
            assert f"{stem}.png" in names, stem
    for f in ("recall_k.png", "build_cost.png", "runs.csv", "tables/best_qps.csv",
              "report.html"):
        assert f in names
    assert not (out / "galleries").exists()
    assert written[-1] == out / "report.html"
    for p in written:
        assert p.exists() and p.stat().st_size > 0
        if p.suffix == ".png":
            w, h = _is_png(p)
            assert w > 400 and h > 300

    table = pd.read_csv(out / "tables" / "best_qps.csv")
    t10 = table[table["k"] == 10].set_index(["series", "min_score"])
    assert t10.loc[("faiss-ivf", 0.90), "qps"] == 3500
    assert t10.loc[("faiss-ivf", 0.95), "qps"] == 1800
    assert t10.loc[("faiss-ivf", 0.99), "qps"] == 950
    assert t10.loc[("hnswlib", 0.95), "qps"] == 10000
    # the 0.99 winner is the M=16 build: its build time and memory come with it
    assert t10.loc[("hnswlib", 0.99), "qps"] == 4300
    assert t10.loc[("hnswlib", 0.99), "build_time_s"] == 2.5
    assert t10.loc[("hnswlib", 0.99), "index_mb"] == pytest.approx(5.0)
    assert "M=16" in t10.loc[("hnswlib", 0.99), "build_params"]
    assert t10.loc[("faiss-flat", 0.99), "qps"] == 400
    assert "annoy" not in set(table["series"])  # failed runs never win a row

    report = _parse_report(out / "report.html")
    assert {"summary-table", "best-qps-k1", "best-qps-k10", "failed-runs",
            "environment-table"} <= set(report.ids)
    assert len(report.srcs) == len([n for n in names if n.endswith(".png")])
    for src in report.srcs:
        assert (out / src).is_file(), src
    html = (out / "report.html").read_text()
    assert "build exceeded 60 s" in html and "https://" not in html and "http://" not in html




def test_pareto_front_keeps_only_undominated_points():
    df = pd.DataFrame({"recall": [0.5, 0.9, 0.8, 0.95, 0.9], "qps": [100, 50, 40, 10, 60]})
    front = pareto_front(df)
    assert list(zip(front["recall"], front["qps"], strict=True)) == [(0.5, 100), (0.9, 60),
                                                                      (0.95, 10)]


def test_old_and_bad_schemas_are_named():
    make_ann_results("old", schema=0)
    with pytest.raises(BenchError, match=r"schema 0 is too old.*reads schema 1"):
        process_results("old")
    make_ann_results("new", schema=99)
    with pytest.raises(BenchError, match="newer than this featbench supports"):
        process_results("new")
    folder = _results_dir("broken")
    _write(folder, {"schema": 1, "name": "broken", "runs": [{"id": "x"}]})
    with pytest.raises(BenchError, match=r"runs\[0\] lacks algorithm, k, label, status"):
        process_results("broken")


def test_results_without_finished_runs_still_get_a_report():
    folder = _results_dir("empty")
    _write(folder, {"schema": 1, "name": "empty", "runs": []})
    written = process_results("empty")
    assert written == [_plots("empty") / "report.html"]
    assert "No finished runs" in written[0].read_text()


# ----------------------------------------------------------------------------- identity


def _tile_color(gallery: Path, rank: int) -> tuple[int, int, int]:
    """Colour of the frame of neighbour `rank` (0-based) in a 3-line-header gallery."""
    tw = THUMB + 2 * BORDER
    th = tw + PAD // 2 + 15 * 3
    head = PAD + 20 * 3 + PAD
    r, c = divmod(rank, 5)
    x = PAD + tw + GAP + c * (tw + PAD) + 1
    y = head + r * (th + PAD) + 1
    with Image.open(gallery) as img:
        return img.convert("RGB").getpixel((x, y))


def test_identity_results_give_heatmap_family_bars_and_galleries():
    make_identity_results()
    messages: list[str] = []

    class Console:
        def print(self, text, **kw):
            messages.append(str(text))

    written = process_results("ident", gallery_select="failures", console=Console())
    out = _plots("ident")
    names = _names(written, out)
    assert {"attack_heatmap_k1.png", "family_bars_k1.png", "tables/hit_rate_by_attack_k1.csv",
            "tables/hit_rate_by_family_k1.csv", "recall_qps_k1.png", "recall_qps_k5.png",
            "report.html"} <= names

    by_attack = pd.read_csv(out / "tables" / "hit_rate_by_attack_k1.csv",
                            index_col="configuration")
    assert list(by_attack.columns) == [a for a, _ in ATTACKS]  # the dataset's own order
    assert by_attack.loc["dhash / faiss-flat BFlat", "rotate_5"] == 0.0
    assert by_attack.loc["dhash / faiss-flat BFlat", "jpeg_50"] == 1.0
    assert by_attack.loc["dhash / faiss-ivf BIVF4 nprobe=1", "crop_10"] == 0.0

    # gallery run: largest k, then best hit rate -> faiss-flat at k=5; its rank-1 failures are
    # the 6 rotate_5 queries and the text_10 query of identity 0
    gdir = out / "galleries" / "dhash"
    wrong = sorted(p.name for p in (gdir / "incorrect").glob("*.png"))
    assert len(wrong) == 7 and not (gdir / "correct").exists()
    assert sum("rotate_5" in n for n in wrong) == 6
    rotated = next((gdir / "incorrect").glob("q00002_*rotate_5.png"))
    assert _tile_color(rotated, 0)[0] > 180  # rank 1 is a distractor: red frame
    assert _tile_color(rotated, 1)[1] > 110 and _tile_color(rotated, 1)[0] < 80  # original: green
    assert _is_png(rotated)[0] > 5 * THUMB

    # the deleted database image becomes a warning and a grey tile, not a crash
    assert any("db7.png" in m and "grey" in m for m in messages)
    html = (out / "report.html").read_text()
    assert "db7.png" in html and "wrong at rank 1" in html


def _galleries(name: str, **options) -> list:
    """Only the gallery stage (the full pipeline is covered above), to keep the test fast."""
    results = load_results(name)
    return gallery_outputs(results, ok_runs(runs_frame(results)), _plots(name),
                           GalleryOptions(**options))


def test_gallery_selection_modes_and_cap():
    make_identity_results(missing_image=False)
    _galleries("ident", select="per-attack", max_galleries=8)
    gdir = _plots("ident") / "galleries" / "dhash"
    files = sorted(p.name for p in gdir.rglob("*.png"))
    assert len(files) == 8
    for attack, _ in ATTACKS:
        assert sum(n.endswith(f"{attack}.png") for n in files) == 2

    _galleries("ident", select="sample", max_galleries=5, seed=1)
    first = sorted(p.relative_to(gdir).as_posix() for p in gdir.rglob("*.png"))
    _galleries("ident", select="sample", max_galleries=5, seed=1)
    again = sorted(p.relative_to(gdir).as_posix() for p in gdir.rglob("*.png"))
    assert len(first) == 5 and first == again  # seeded, and stale files are cleared

    assert _galleries("ident", max_galleries=0) == []
    with pytest.raises(BenchError, match="gallery selection 'best'"):
        _galleries("ident", select="best")
    with pytest.raises(BenchError, match="no finished run"):
        _galleries("ident", run="hnsw")
    (made,) = _galleries("ident", select="failures", run="faiss-ivf-1")
    wrong = list((gdir / "incorrect").glob("*.png"))
    assert len(wrong) == 13 == made.n_failures  # k=1 ivf: rotate_5, crop_10, text_10 of id 0
    assert made.k == 1 and made.select == "failures"


def test_select_queries_is_seeded_and_capped():
    correct = np.array([True, False] * 50)
    groups = [f"a{i % 7}" for i in range(100)]
    failures = select_queries("failures", correct, groups, 10, seed=4)
    assert len(failures) == 10 and not correct[failures].any()
    assert np.array_equal(failures, select_queries("failures", correct, groups, 10, seed=4))
    per = select_queries("per-attack", correct, groups, 14, seed=4)
    assert sorted({groups[i] for i in per}) == [f"a{i}" for i in range(7)] and len(per) == 14
    assert len(select_queries("per-attack", correct, groups, 3, seed=4)) == 3
    with pytest.raises(BenchError, match="no attack attribute"):
        select_queries("per-attack", correct, [None] * 100, 5, seed=0)


def test_gallery_distances_come_from_the_saved_files():
    folder = make_identity_results(missing_image=False)
    results = json.loads((folder / "results.json").read_text())
    results["_path"] = str(folder / "results.json")
    desc = results["dataset"]["feature_sets"]["dhash"]
    run = pd.Series({"metric": "euclidean", "distances_file": "neighbors/faiss-flat-5.dist.npy"})
    ids = identity_neighbours(False)
    rows = np.array([0, 5])
    got = neighbour_distances(results, run, desc, ids, rows, {0: 0, 5: None})
    saved = np.load(folder / "neighbors" / "faiss-flat-5.dist.npy")
    to_original = np.load(folder / "items" / "dhash.original_dist.npy")
    assert np.allclose(got[5][:K], saved[5]) and np.isnan(got[5][K])
    assert got[0][K] == pytest.approx(to_original[0])
    # results written before the run stage saved distances: tiles show none, no crash
    assert neighbour_distances(results, pd.Series({"metric": "euclidean"}), desc, ids,
                               rows, {}) == {}


def test_mismatched_neighbours_file_is_a_clear_error():
    folder = make_identity_results(missing_image=False)
    np.save(folder / "neighbors" / "faiss-flat-5.npy", np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(BenchError, match=r"do not match the 24 queries"):
        _galleries("ident")


# ----------------------------------------------------------------------------- labels


def test_label_results_give_pr_curves_and_text_galleries():
    make_label_results()
    written = process_results("labels", svg=True, self_contained=True)
    out = _plots("labels")
    names = _names(written, out)
    assert {"pr_curves.png", "pr_curves.svg", "recall_qps_k3.png", "recall_qps_k3.svg"} <= names
    assert (out / "pr_curves.svg").read_text().lstrip().startswith("<?xml")
    gallery = sorted((out / "galleries" / "clip").rglob("*.png"))
    assert len(gallery) == 6  # every query fits under the cap
    # ids row i = [i % 3, ...]: label of db i%3 equals query i's label, so all correct at rank 1
    assert all(p.parent.name == "correct" for p in gallery)
    # rank 2 is db (i + 1) % 3 (another label): red; rank 3 is db 3 + i % 3 (same label): green
    assert _tile_color(gallery[0], 1)[0] > 180
    assert _tile_color(gallery[0], 2)[1] > 110 and _tile_color(gallery[0], 2)[0] < 80
    report = _parse_report(out / "report.html")
    assert "precision-recall" in report.ids
    # self-contained: every image, plots and gallery samples alike, is embedded
    assert len(report.srcs) >= 8
    assert all(s.startswith("data:image/png;base64,") for s in report.srcs)
