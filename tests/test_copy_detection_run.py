"""Identity runs score both views: per-query hit rate and pooled µAP / R@P90.

Built on a small copydetect-mini (real sample photos, their attacks) with negative
queries (attacks of images outside the database, and of a held-out photo) and a
background set for score normalisation; the pooled figures of the run are checked
against a naive recomputation from the run's own neighbours file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from bench.core.errors import BenchError
from bench.datasets import DatasetContext, registry

PHOTOS = ["astronaut", "camera", "coffee", "coins", "chelsea"]
ATTACKS = ["jpeg_50", "gaussian_blur_3", "rotate_10", "crop_20", "text_10"]
DATASET = {"name": "copydetect-mini", "n_distractors": 40, "distractor_size": 64,
           "max_side": 96, "photos": PHOTOS, "attacks": ATTACKS, "negatives": 4,
           "holdout": ["chelsea"], "background": 30, "workers": 1, "progress": False}


def _load(tmp_path: Path, **options):
    cls = registry.get("copydetect-mini")
    ctx = DatasetContext(seed=1, cache_dir=tmp_path / "cache", base_dir=tmp_path)
    return cls(cls.Options.model_validate(options), ctx).load()


def test_negatives_holdout_and_background_stay_out_of_the_database(tmp_path):
    opts = {k: v for k, v in DATASET.items() if k != "name"}
    d = _load(tmp_path, **opts)
    db_ids = {it.identity for it in d.database}
    assert "mini:chelsea" not in db_ids and "mini:coffee" in db_ids
    negatives = [q for q in d.queries if q.identity not in db_ids]
    # 4 procedural sources + the held-out photo, each with every attack
    assert len(negatives) == (4 + 1) * len(ATTACKS)
    assert len(d.queries) == (len(PHOTOS) + 4) * len(ATTACKS)
    assert {q.attrs["family"] for q in negatives} >= {"compression", "rotation"}
    assert len(d.background) == 30
    bg_paths = {it.path.read_bytes() for it in d.background}
    assert not bg_paths & {it.path.read_bytes() for it in d.database}
    with pytest.raises(BenchError, match="holdout 'lena'"):
        _load(tmp_path, **{**opts, "holdout": ["lena"]})


def _naive_uap(scores, correct, n_pos):
    pairs = sorted(zip(scores, correct, strict=True), key=lambda t: (-t[0], t[1]))
    tp, total = 0, 0.0
    for i, (_, ok) in enumerate(pairs, 1):
        if ok:
            tp += 1
            total += tp / i
    return total / n_pos


def test_identity_run_records_hit_rate_and_pooled_metrics(tmp_path):
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    spec = {
        "name": "cd", "seed": 1, "dataset": DATASET,
        "extractor": [{"name": "dhash", "hash_size": 8}],
        "metric": "hamming", "k": [1, 5], "runs": 1, "timeout": 60,
        "relevance": {"mode": "identity", "pooled": {"normalise": {"beta": 1.0, "n": 3}}},
        "algorithms": [{"algorithm": "bruteforce", "name": "exact"}],
    }
    path = tmp_path / "cd.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False, workers=1),
                             console)
    data = load_results(results.path)
    runs = [r for r in data["runs"] if r["status"] == "ok"]
    assert len(runs) == 2, [r.get("error") for r in data["runs"]]
    run = next(r for r in runs if r["k"] == 5)
    n_pos_q = (len(PHOTOS) - 1) * len(ATTACKS)
    assert run["positive_queries"] == n_pos_q == run["true_pairs"]
    assert run["negative_queries"] == 5 * len(ATTACKS)
    assert run["predictions"] == 5 * (n_pos_q + 5 * len(ATTACKS))
    for key in ("uap", "recall@p90", "uap_norm", "recall@p90_norm", "hit_rate"):
        assert run[key] is not None and 0 <= run[key] <= 1, key
    assert run["accuracy@1"] == pytest.approx(run["hit_rate@1"])
    # hit rate ignores negatives; µAP pays for them: recompute from the neighbours file
    folder = results.path.parent
    items = json.loads((folder / data["dataset"]["feature_sets"]["dhash"]["items_file"])
                       .read_text())
    ids = np.load(folder / run["neighbors_file"])[:, :5]
    db_ident = np.array([it["identity"] for it in items["database"]])
    q_ident = np.array([it["identity"] for it in items["queries"]])
    correct = (db_ident[ids] == q_ident[:, None]) & (ids >= 0)
    # the pooled curve ends at the share of true pairs found among all predictions
    assert run["pooled_pr"]["recall"][-1] == pytest.approx(correct.sum() / n_pos_q, abs=1e-6)
    assert run["pooled_pr"]["precision"][-1] == pytest.approx(correct.sum() / ids.size,
                                                              abs=1e-6)
    positive = np.isin(q_ident, db_ident)
    assert run["hit_rate@5"] == pytest.approx(correct[positive].any(axis=1).mean())
    # 25 negative queries each bring 5 false positives: µAP < hit rate here
    assert run["uap"] < run["hit_rate@5"]
    by = run["uap_by_family"]
    assert set(by) == {"compression", "filter", "rotation", "crop", "text"}
    assert run["pooled"]["normalise"] == {"beta": 1.0, "n": 3}

    # report: both views in one table, pooled PR curves and µAP by family drawn
    from bench.process import process_results

    written = process_results(results.path)
    names = {p.name for p in written}
    assert {"pooled_pr.png", "uap_by_family.png", "copy_detection.csv"} <= names
    html = next(p for p in written if p.name == "report.html").read_text()
    table = html.split('id="copy-detection-table"')[1].split("</table>")[0]
    for column in ("hit_rate@1", "uap", "recall@p90", "uap_norm", "recall@p90_norm"):
        assert f"<th>{column}</th>" in table
    assert f"{run['uap']:.4f}" in table and f"{run['uap_norm']:.4f}" in table


def test_pooled_scorer_against_a_naive_loop():
    from bench.config.sections import PooledOptions
    from bench.scoring.copy_detection import PooledScorer

    rng = np.random.default_rng(5)
    db = rng.standard_normal((30, 4)).astype(np.float32)
    q = np.concatenate([db[:6] + 0.3 * rng.standard_normal((6, 4)),
                        rng.standard_normal((4, 4))]).astype(np.float32)  # 4 negatives
    bg = rng.standard_normal((20, 4)).astype(np.float32)
    truth = np.full(10, -1)
    truth[:6] = np.arange(6)
    n_rel = (truth >= 0).astype(int)
    d = ((q[:, None, :] - db[None]) ** 2).sum(-1) ** 0.5
    ranking = np.argsort(d, axis=1)[:, :3]
    mask = ranking == truth[:, None]
    scorer = PooledScorer(PooledOptions(normalise={"beta": 0.5, "n": 2}), database=db,
                          queries=q, metric="euclidean", n_relevant=n_rel, background=bg)
    out = scorer.scores(ranking, mask)
    sims = -np.take_along_axis(d, ranking, 1)
    assert out["uap"] == pytest.approx(_naive_uap(sims.ravel(), mask.ravel(), 6), rel=1e-6)
    bgd = np.sort(((q[:, None, :] - bg[None]) ** 2).sum(-1) ** 0.5, axis=1)[:, 1]
    norm = sims + 0.5 * bgd[:, None]
    assert out["uap_norm"] == pytest.approx(_naive_uap(norm.ravel(), mask.ravel(), 6),
                                            rel=1e-5)
    assert (out["positive_queries"], out["negative_queries"]) == (6, 4)
    with pytest.raises(BenchError, match="background set"):
        PooledScorer(PooledOptions(normalise={}), database=db, queries=q,
                     metric="euclidean", n_relevant=n_rel, background=None)
