"""The augly attack family: deterministic, byte-identical reruns, end to end on copydetect-mini."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from rich.console import Console

from bench.datasets.prepare.attacks import family_of, get_attack, write_attacks
from bench.datasets.samples import procedural_image

pytestmark = pytest.mark.skipif(importlib.util.find_spec("augly") is None,
                                reason="augly not installed (pip install 'featbench[augly]')")


def _sources(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(2):
        procedural_image(i, 9, 96).save(folder / f"src{i}.png")
    return folder


def test_every_augly_attack_changes_the_image_and_reruns_byte_identically(tmp_path):
    from bench.datasets.prepare.augly_attacks import AUGLY_NAMES

    src = _sources(tmp_path / "src")
    reports = [write_attacks(src, tmp_path / f"out{i}", seed=s, workers=1, progress=False,
                             attacks=AUGLY_NAMES)
               for i, s in enumerate((5, 5, 6))]
    assert all(r.written == 2 * len(AUGLY_NAMES) and not r.skipped for r in reports)
    original = np.asarray(Image.open(src / "src0.png").convert("RGB"))
    differs_by_seed = 0
    for name in AUGLY_NAMES:
        a, b, c = ((tmp_path / f"out{i}" / f"src0_{name}.png").read_bytes() for i in range(3))
        assert a == b, name  # same seed: same bytes
        differs_by_seed += a != c
        img = Image.open(tmp_path / "out0" / f"src0_{name}.png")
        assert img.mode == "RGB"
        arr = np.asarray(img)
        assert arr.shape != original.shape or not np.array_equal(arr, original), name
        assert family_of(name) == "augly" and get_attack(name).family == "augly"
    # the parameters come from the seed: most attacks change with it (flips, greyscale don't)
    assert differs_by_seed >= len(AUGLY_NAMES) - 4


def test_augly_attacked_query_set_runs_end_to_end(tmp_path):
    from bench.results import load_results
    from bench.run.runner import RunOptions, run_experiment

    attacks = ["augly_overlay_emoji", "augly_pad", "augly_grayscale", "augly_chain_1"]
    spec = {"name": "aug", "seed": 2,
            "dataset": {"name": "copydetect-mini", "photos": ["astronaut", "coffee", "camera"],
                        "attacks": attacks, "n_distractors": 20, "distractor_size": 64,
                        "max_side": 96, "negatives": 2, "workers": 1, "progress": False},
            "extractor": {"name": "phash", "hash_size": 8}, "metric": "hamming", "k": 3,
            "runs": 1, "timeout": 60, "relevance": "identity",
            "algorithms": [{"algorithm": "bruteforce", "name": "exact"}]}
    path = tmp_path / "aug.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    console = Console(file=open(tmp_path / "log.txt", "w"))  # noqa: SIM115
    results = run_experiment(path, RunOptions(executor="inline", progress=False, workers=1),
                             console)
    data = load_results(results.path)
    (run,) = data["runs"]
    assert run["status"] == "ok", run.get("error")
    assert (run["positive_queries"], run["negative_queries"]) == (12, 8)
    assert set(run["hit_rate_by_attack"]) == set(attacks)
    assert set(run["uap_by_family"]) == {"augly"} and run["uap"] is not None
    items = json.loads((results.path.parent / data["dataset"]["feature_sets"]["phash"]
                        ["items_file"]).read_text())
    assert {q["attrs"]["family"] for q in items["queries"]} == {"augly"}
