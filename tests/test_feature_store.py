"""Feature store: skipping unreadable files, caching, resuming, custom pipelines."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import imagehash
import numpy as np
import pytest
from PIL import Image
from skimage import data

from bench.core.items import Item
from bench.extractors import registry
from bench.extractors.base import Extractor
from bench.features import store as store_mod
from bench.features.store import extract_features


class Counting(Extractor):
    """Mean RGB of each image; counts the images it saw (in this process)."""

    registered_name = "counting"
    seen: ClassVar[int] = 0
    fail_after: ClassVar[int | None] = None

    @property
    def dim(self) -> int:
        return 3

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        if Counting.fail_after is not None and Counting.seen >= Counting.fail_after:
            raise KeyboardInterrupt  # what a Ctrl-C in the middle of extraction looks like
        Counting.seen += len(batch)
        return np.asarray([np.asarray(img, np.float32).mean(axis=(0, 1)) for img in batch])


@pytest.fixture(autouse=True)
def reset_counter():
    Counting.seen, Counting.fail_after = 0, None


def _folder(tmp_path: Path, n: int = 6) -> list[Item]:
    folder = tmp_path / "imgs"
    folder.mkdir()
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.camera(),
              data.coins()]
    items = []
    for i in range(n):
        path = folder / f"{i:02d}.png"
        img = Image.fromarray(photos[i % 6]).convert("RGB").resize((40 + i, 30))
        img.save(path)
        items.append(Item(id=f"t:{i}", identity=f"t:{i}", path=path))
    return items


def _with_bad_files(tmp_path: Path) -> list[Item]:
    items = _folder(tmp_path)
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG")
    truncated = tmp_path / "imgs" / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    empty = tmp_path / "imgs" / "empty.jpg"
    empty.write_bytes(b"")
    items.insert(2, Item(id="t:truncated", path=truncated))
    items.insert(5, Item(id="t:empty", path=empty))
    return items


def _dhash():
    cls = registry.get("dhash")
    return cls(cls.Options())


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_and_empty_files_are_skipped_and_reported(tmp_path: Path, workers: int,
                                                          caplog: pytest.LogCaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(store_mod, "BATCH", 3)  # several batches: the worker pool is used
    items = _with_bad_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bench.features.store"):
        got = extract_features(_dhash(), items, cache_dir=tmp_path / "cache",
                               dataset_fingerprint="d", workers=workers, progress=False)
    assert [i for i, _ in got.skipped] == ["t:truncated", "t:empty"]
    assert "truncated" in got.skipped[0][1] and "identify" in got.skipped[1][1]
    assert "truncated.jpg" in caplog.text and "empty.jpg" in caplog.text
    assert got.kept.tolist() == [0, 1, 3, 4, 6, 7]
    assert got.features.shape == (6, 8) and got.features.dtype == np.uint8
    for row, pos in zip(got.features, got.kept, strict=True):
        with Image.open(items[pos].path) as im:
            expected = imagehash.dhash(im.convert("RGB")).hash.flatten()
        assert np.array_equal(np.unpackbits(row).astype(bool), expected)
    again = extract_features(_dhash(), items, cache_dir=tmp_path / "cache",
                             dataset_fingerprint="d", workers=workers, progress=False)
    assert again.skipped == got.skipped and isinstance(again.features, np.memmap)


def test_second_extraction_is_a_cache_hit(tmp_path: Path):
    items = _folder(tmp_path)
    kw = dict(cache_dir=tmp_path / "cache", dataset_fingerprint="d", workers=1, progress=False)
    first = extract_features(Counting(Counting.Options()), items, **kw)
    assert Counting.seen == 6
    second = extract_features(Counting(Counting.Options()), items, **kw)
    assert Counting.seen == 6
    assert np.array_equal(first.features, second.features)
    assert isinstance(second.features, np.memmap) and second.features.dtype == np.float32
    # a changed file is a different dataset: only then is it extracted again
    os.utime(items[0].path, ns=(1, 1))
    extract_features(Counting(Counting.Options()), items, **kw)
    assert Counting.seen == 12


def test_interrupted_extraction_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(store_mod, "BATCH", 2)
    monkeypatch.setattr(store_mod, "CHUNK", 4)
    items = _folder(tmp_path, n=12)
    kw = dict(cache_dir=tmp_path / "cache", dataset_fingerprint="d", workers=1, progress=False)
    Counting.fail_after = 8
    with pytest.raises(KeyboardInterrupt):
        extract_features(Counting(Counting.Options()), items, **kw)
    assert Counting.seen == 8  # two chunks of 4 are on disk
    Counting.fail_after = None
    resumed = extract_features(Counting(Counting.Options()), items, **kw)
    assert Counting.seen == 12  # only the last 4 were extracted again
    Counting.seen = 0
    fresh = extract_features(Counting(Counting.Options()), items, cache_dir=tmp_path / "c2",
                             dataset_fingerprint="d", workers=1, progress=False)
    assert np.array_equal(np.asarray(resumed.features), np.asarray(fresh.features))
    assert resumed.kept.tolist() == list(range(12))


class OwnPipeline(Counting):
    """Delivers batches out of order, like a multi-worker DataLoader might."""

    registered_name = "own-pipeline"

    def run_pipeline(self, items, on_batch, *, workers):
        order = np.arange(len(items))[::-1]
        for start in range(0, len(order), 3):
            pos = order[start : start + 3]
            imgs = [Image.open(items[p].path).convert("RGB") for p in pos]
            on_batch(pos, self.extract(imgs), [])
        return True


def test_own_pipeline_results_are_stored_in_item_order(tmp_path: Path):
    items = _folder(tmp_path, n=7)
    own = extract_features(OwnPipeline(OwnPipeline.Options()), items, cache_dir=tmp_path / "a",
                           dataset_fingerprint="d", workers=1, progress=False)
    default = extract_features(Counting(Counting.Options()), items, cache_dir=tmp_path / "b",
                               dataset_fingerprint="d", workers=1, progress=False)
    assert own.kept.tolist() == list(range(7))
    assert np.allclose(own.features, default.features)


def test_text_items_and_all_skipped(tmp_path: Path):
    class Length(Extractor):
        registered_name = "length"
        modality = "text"

        @property
        def dim(self) -> int:
            return 1

        def extract(self, batch):
            return np.asarray([[len(t)] for t in batch], np.float32)

    items = [Item(id="a", text="hello"), Item(id="b", text="hi"), Item(id="c")]
    got = extract_features(Length(Length.Options()), items, cache_dir=tmp_path / "c",
                           dataset_fingerprint="d", workers=1, progress=False)
    assert got.features[:, 0].tolist() == [5.0, 2.0] and [i for i, _ in got.skipped] == ["c"]
    none = extract_features(_dhash(), [Item(id="x", path=tmp_path / "missing.png")],
                            cache_dir=tmp_path / "c", dataset_fingerprint="d", workers=1,
                            progress=False)
    assert none.features.shape == (0, 8) and none.skipped[0][0] == "x"


def test_bench_run_reports_the_two_unreadable_files(tmp_path: Path, write_experiment):
    import json

    from bench.datasets.prepare.attacks import attack_image, attack_rng
    from bench.run.runner import RunOptions, run_experiment

    items = _with_bad_files(tmp_path)
    queries = tmp_path / "queries"
    queries.mkdir()
    for item in items:
        if item.path.stat().st_size and "truncated" not in item.path.name:
            img = Image.open(item.path).convert("RGB")
            attack_image(img, "jpeg_50", attack_rng(0, item.path.name, "jpeg_50")).save(
                queries / f"{item.path.stem}_jpeg_50.png")
    spec = {
        "name": "corrupt", "seed": 1, "metric": "hamming", "k": 1, "relevance": "identity",
        "runs": 1, "timeout": 60,
        "dataset": {"name": "image-folder", "path": str(tmp_path / "imgs"),
                    "queries": str(queries)},
        "extractor": {"name": "dhash"},
        "algorithms": [{"algorithm": "faiss-binary", "build": {"index_binary_factory": "BFlat"}}],
    }
    results = run_experiment(write_experiment(spec),
                             RunOptions(executor="inline", progress=False, workers=1))
    saved = json.loads(results.path.read_text())
    skipped = saved["dataset"]["feature_sets"]["dhash"]["skipped"]
    assert sorted(i for i, _ in skipped) == ["folder:empty", "folder:truncated"]
    run = saved["runs"][0]
    assert run["status"] == "ok" and run["n_queries"] == 6
    assert run["hit_rate"] == 1.0 and set(run["hit_rate_by_family"]) == {"compression"}
