"""`bench process` reads results/<name>/ only: it works with the feature cache deleted.

The run stage saves what the galleries need (exact distances of the returned ids
beside the neighbours, each query's distance to its original beside the items), so
a results folder copied to another machine, or a cache cleaned to free disk,
still processes into the same figures and galleries.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from rich.console import Console

from bench.groundtruth.exact import exact_distances

DATASET = {"name": "copydetect-mini", "n_distractors": 30, "distractor_size": 64,
           "max_side": 96, "photos": ["astronaut", "camera", "coffee", "coins"],
           "attacks": ["jpeg_50", "rotate_10", "crop_20"], "workers": 1, "progress": False}


def test_process_with_the_feature_cache_deleted(tmp_path: Path):
    from bench.process import process_results
    from bench.process.distances import neighbour_distances
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    spec = {"name": "nocache", "seed": 3, "dataset": DATASET,
            "extractor": [{"name": "dhash", "hash_size": 8}], "metric": "hamming",
            "k": 5, "runs": 1, "timeout": 60, "relevance": {"mode": "identity"},
            "algorithms": [{"algorithm": "bruteforce", "name": "exact"}]}
    path = tmp_path / "nocache.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False), console)
    data = load_results(results.path)
    run = next(r for r in data["runs"] if r["status"] == "ok")
    desc = data["dataset"]["feature_sets"]["dhash"]
    folder = results.path.parent
    ids = np.load(folder / run["neighbors_file"])
    saved = np.load(folder / run["distances_file"])
    # the saved distances are the exact ones, from the features the run used
    prepared = Path(tmp_path / "cache" / "prepared")
    db = np.load(prepared / f"{desc['fingerprint']}-database.npy")
    queries = np.load(prepared / f"{desc['fingerprint']}-queries.npy")
    np.testing.assert_array_equal(saved, exact_distances(db, queries, ids, "hamming"))
    to_original = np.load(folder / desc["original_distances_file"])
    assert to_original.shape == (len(queries),) and np.isfinite(to_original).all()

    # everything derived from features goes; the generated photos the galleries show stay
    for derived in ("features", "prepared", "groundtruth"):
        shutil.rmtree(tmp_path / "cache" / derived, ignore_errors=True)
    assert not prepared.exists()
    written = process_results(results.path)
    galleries = [p for p in written if "galleries" in p.parts]
    assert galleries and (folder.parent.parent / "plots" / "nocache" / "report.html").exists()
    rows = np.arange(3)
    got = neighbour_distances(data, pd.Series(run), desc, ids, rows, {0: 0, 1: None, 2: 0})
    np.testing.assert_array_equal(got[0][:5], saved[0])
    assert got[0][5] == to_original[0] and np.isnan(got[1][5])
