"""Prepared arrays are written block by block into memory maps, normalised once (#20)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.core.items import Item
from bench.datasets.base import VectorData
from bench.features import prepare
from bench.features.prepare import prepare_vectors


def _data(n: int = 3000, dim: int = 12, seed: int = 0) -> VectorData:
    rng = np.random.default_rng(seed)
    return VectorData(database=rng.standard_normal((n, dim)).astype(np.float32) * 3,
                      queries=rng.standard_normal((25, dim)).astype(np.float32),
                      database_items=[Item(id=f"d{i}") for i in range(n)])


def test_angular_stored_normalised_in_a_memory_map(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare, "BLOCK_BYTES", 12 * 4 * 500)  # 500 rows a block
    data = _data()
    fs = prepare_vectors(data, "angular", extractor=None, source="s", max_queries=None,
                         cache_dir=tmp_path)
    assert isinstance(fs.database, np.memmap) and isinstance(fs.queries, np.memmap)
    assert Path(fs.database.filename) == fs.database_path.resolve()
    np.testing.assert_allclose(np.linalg.norm(fs.database, axis=1), 1.0, rtol=1e-6)
    want = data.database / np.linalg.norm(data.database, axis=1, keepdims=True)
    assert np.array_equal(np.asarray(fs.database), want)
    assert fs.description["data_bytes"] == data.database.nbytes
    assert not list((tmp_path / "prepared").glob(".prepare-*"))  # no temporary left
    mask = os.umask(0)
    os.umask(mask)
    assert fs.database_path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


def test_shuffle_applied_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare, "BLOCK_BYTES", 12 * 4 * 700)
    data = _data()
    fs = prepare_vectors(data, "euclidean", extractor="x", source="s", max_queries=None,
                         cache_dir=tmp_path, shuffle_seed=7)
    order = np.random.default_rng(7).permutation(3000)
    assert np.array_equal(np.asarray(fs.database), data.database[order])
    assert [it.id for it in fs.database_items or []] == [f"d{i}" for i in order]
    assert fs.description["database_shuffle_seed"] == 7
    data.database[int(order[1234])] = np.nan
    with pytest.raises(BenchError, match=rf"s database: row {int(order[1234])} contains NaN"):
        prepare_vectors(data, "euclidean", extractor="x", source="s", max_queries=None,
                        cache_dir=tmp_path / "other", shuffle_seed=7)
    assert not list((tmp_path / "other" / "prepared").glob(".prepare-*"))


def test_same_source_reuses_the_prepared_files(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    first = prepare_vectors(data, "angular", extractor=None, source="s", max_queries=None,
                            cache_dir=tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("prepared again")

    monkeypatch.setattr(prepare, "_prepare_to_file", refuse)
    again = prepare_vectors(data, "angular", extractor=None, source="s", max_queries=None,
                            cache_dir=tmp_path)
    assert again.fingerprint == first.fingerprint and again.database_path == first.database_path
    with pytest.raises(AssertionError, match="prepared again"):  # another metric: new files
        prepare_vectors(data, "euclidean", extractor=None, source="s", max_queries=None,
                        cache_dir=tmp_path)


def test_preparing_a_mapped_source_holds_one_block(tmp_path: Path) -> None:
    """64 MiB of memory-mapped source prepared (angular) with 2 MiB blocks: the driver's
    anonymous memory grows by a few blocks, never by the array (fresh process, so memory
    freed earlier in the suite cannot hide growth)."""
    source = tmp_path / "source.npy"
    rows = (64 << 20) // (256 * 4)
    out = np.lib.format.open_memmap(source, mode="w+", dtype=np.float32, shape=(rows, 256))
    out[:] = np.random.default_rng(0).standard_normal((rows, 256), dtype=np.float32)
    out.flush()
    del out
    code = f"""
import threading
import numpy as np
from pathlib import Path
from bench.core.memory import anonymous_bytes
from bench.datasets.base import VectorData
from bench.features import prepare
prepare.BLOCK_BYTES = 2 << 20
db = np.load({str(source)!r}, mmap_mode="r")
data = VectorData(database=db, queries=np.asarray(db[:10]))
peak, stop = [0], threading.Event()
def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], anonymous_bytes())
        stop.wait(0.002)
before = anonymous_bytes()
t = threading.Thread(target=watch)
t.start()
fs = prepare.prepare_vectors(data, "angular", extractor=None, source="s", max_queries=None,
                             cache_dir=Path({str(tmp_path / "cache")!r}))
stop.set()
t.join()
print(peak[0] - before, fs.database.nbytes)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    grew, nbytes = map(int, result.stdout.split())
    assert nbytes == 64 << 20
    assert grew < 16 << 20, grew


def test_large_synthetic_data_generated_into_a_memory_map(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.datasets import DatasetContext, vectors
    from bench.datasets import registry as datasets

    cls = datasets.get("synthetic")
    options = cls.Options.model_validate({"n": 3000, "dim": 40, "n_queries": 30})

    def load() -> VectorData:
        data = cls(options, DatasetContext(seed=5, cache_dir=tmp_path, base_dir=tmp_path)).load()
        assert isinstance(data, VectorData)
        return data

    small = load()
    assert not isinstance(small.database, np.memmap)
    monkeypatch.setattr(vectors, "MAP_BYTES", 1 << 10)
    monkeypatch.setattr(vectors, "GEN_BYTES", 40 * 4 * 700)
    mapped = load()
    assert isinstance(mapped.database, np.memmap) and isinstance(mapped.queries, np.memmap)
    assert np.array_equal(np.asarray(mapped.database), small.database)  # the same values
    assert np.array_equal(np.asarray(mapped.queries), small.queries)
    (path,) = (tmp_path / "synthetic").glob("*.npy")
    stamp = path.stat().st_mtime_ns
    again = load()  # generated once, then reused from the cache
    assert path.stat().st_mtime_ns == stamp and np.array_equal(again.database, small.database)
