"""The feature store writes features straight into a memory-mapped row file (#20).

At 500,000 x 4,096 a list of batches concatenated at the end is 8 GB in the driver
twice; written into a map, the driver holds one batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from bench.core.items import Item
from bench.extractors.base import Extractor
from bench.features import store as store_mod
from bench.features.store import ROWS_FILE, extract_features


class Codes(Extractor):
    """Text items -> 16 float32 values from the text; a text "bad" cannot be extracted;
    stops (like a Ctrl-C) once ``stop_after`` items have been seen."""

    registered_name = "codes"
    modality = "text"
    seen: ClassVar[int] = 0
    stop_after: ClassVar[int | None] = None

    @property
    def dim(self) -> int:
        return 16

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        if Codes.stop_after is not None and Codes.seen >= Codes.stop_after:
            raise KeyboardInterrupt
        if "bad" in batch:
            raise ValueError("cannot extract 'bad'")
        Codes.seen += len(batch)
        return np.asarray([_row(t) for t in batch], np.float32)


def _row(text: str) -> np.ndarray:
    return np.random.default_rng(int(text.split("-")[1])).standard_normal(16).astype(np.float32)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "BATCH", 4)
    monkeypatch.setattr(store_mod, "CHUNK", 8)
    Codes.seen, Codes.stop_after = 0, None


def _items(n: int, bad: tuple[int, ...] = ()) -> list[Item]:
    return [Item(id=f"i{i}", text="bad" if i in bad else f"t-{i}") for i in range(n)]


def _entry(cache: Path) -> Path:
    (entry,) = (cache / "features").iterdir()
    return entry


def test_interrupted_extraction_left_rows_in_the_map(tmp_path: Path) -> None:
    items = _items(40)
    Codes.stop_after = 16
    with pytest.raises(KeyboardInterrupt):
        extract_features(Codes(Codes.Options()), items, cache_dir=tmp_path,
                         dataset_fingerprint="d", workers=1, progress=False)
    entry = _entry(tmp_path)
    rows = np.load(entry / ROWS_FILE, mmap_mode="r")
    assert rows.shape == (40, 16) and rows.dtype == np.float32
    chunks = sorted((entry / "chunks").glob("*.npz"))
    assert chunks
    done = []
    for chunk in chunks:
        with np.load(chunk) as z:
            assert "features" not in z.files  # chunk files carry positions, not features
            done += z["positions"].tolist()
    assert done == list(range(16))
    assert np.array_equal(rows[:16], np.stack([_row(f"t-{i}") for i in range(16)]))
    Codes.stop_after = None
    got = extract_features(Codes(Codes.Options()), items, cache_dir=tmp_path,
                           dataset_fingerprint="d", workers=1, progress=False)
    assert Codes.seen == 40  # 16 before the stop, only the other 24 after it
    assert np.array_equal(np.asarray(got.features),
                          np.stack([_row(f"t-{i}") for i in range(40)]))


def test_complete_row_file_becomes_the_features_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing skipped the row file is renamed, never copied: same inode."""
    inodes: list[int] = []
    assemble = store_mod._assemble

    def spy(entry: Path, *args: Any) -> None:
        inodes.append(os.stat(entry / ROWS_FILE).st_ino)
        assemble(entry, *args)

    monkeypatch.setattr(store_mod, "_assemble", spy)
    got = extract_features(Codes(Codes.Options()), _items(30), cache_dir=tmp_path,
                           dataset_fingerprint="d", workers=1, progress=False)
    entry = _entry(tmp_path)
    assert inodes == [os.stat(entry / "features.npy").st_ino]
    assert not (entry / ROWS_FILE).exists() and isinstance(got.features, np.memmap)


def test_skipped_items_squeezed_out_in_order(tmp_path: Path) -> None:
    got = extract_features(Codes(Codes.Options()), _items(20, bad=(3, 11)), cache_dir=tmp_path,
                           dataset_fingerprint="d", workers=1, progress=False)
    kept = [i for i in range(20) if i not in (3, 11)]
    assert got.kept.tolist() == kept and [i for i, _ in got.skipped] == ["i3", "i11"]
    assert np.array_equal(np.asarray(got.features), np.stack([_row(f"t-{i}") for i in kept]))
    assert not (_entry(tmp_path) / ROWS_FILE).exists()


def test_unusable_row_file_starts_over(tmp_path: Path) -> None:
    items = _items(12)
    Codes.stop_after = 8
    with pytest.raises(KeyboardInterrupt):
        extract_features(Codes(Codes.Options()), items, cache_dir=tmp_path,
                         dataset_fingerprint="d", workers=1, progress=False)
    (_entry(tmp_path) / ROWS_FILE).write_bytes(b"not an npy file")
    Codes.stop_after, Codes.seen = None, 0
    got = extract_features(Codes(Codes.Options()), items, cache_dir=tmp_path,
                           dataset_fingerprint="d", workers=1, progress=False)
    assert Codes.seen == 12  # nothing reused from chunks whose rows were lost
    assert np.array_equal(np.asarray(got.features),
                          np.stack([_row(f"t-{i}") for i in range(12)]))
