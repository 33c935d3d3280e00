"""Data reaches a backend memory-mapped, and index memory counts no file pages (#20).

The worker used to copy the whole database into private memory before its baseline;
at 500,000 x 4,096 that copy, the library's own and a normalised one were three copies
of 8 GB. These tests run the real worker on small data made here.
"""

from __future__ import annotations

import mmap
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.algorithms import registry
from bench.run.executors.local import _anonymous, run_in_worker, run_inline
from bench.run.executors.task import BuildTask, QueryPoint, TimingPlan

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="anonymous memory: Linux")

#: backends whose build gets the harness's array directly (wrappers and optional
#: libraries are skipped when not installed)
BACKENDS = [("faiss", {"factory": "Flat"}), ("faiss", {"factory": "IVF4,Flat"}),
            ("hnswlib", {}), ("annoy", {"n_trees": 2}), ("usearch", {}), ("bruteforce", {}),
            ("lsh", {}), ("torch", {})]


def _is_mapped(array: np.ndarray) -> bool:
    """A memory map, or a view whose base chain ends in one (never a private copy)."""
    obj: Any = array
    while obj is not None:
        if isinstance(obj, np.memmap | mmap.mmap):
            return True
        obj = getattr(obj, "base", None)
    return False


def _files(tmp_path: Path, n: int, dim: int, seed: int = 0) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    db = rng.standard_normal((n, dim), dtype=np.float32)
    q = rng.standard_normal((20, dim), dtype=np.float32)
    paths = tmp_path / "db.npy", tmp_path / "q.npy"
    np.save(paths[0], db)
    np.save(paths[1], q)
    return str(paths[0]), str(paths[1])


def _task(algorithm: str, build: dict[str, Any], paths: tuple[str, str], dim: int,
          metric: str = "euclidean", limit: int | None = None) -> BuildTask:
    return BuildTask(
        algorithm=algorithm, build=build, points=[QueryPoint(0, {}, 5, "r0")], metric=metric,
        dim=dim, database_path=paths[0], queries_path=paths[1], mode="batch",
        timing=TimingPlan(runs=1),
        threads=1, seed=0, timeout_s=300, memory_limit_bytes=limit,
    )


@pytest.mark.parametrize(("algorithm", "build"), BACKENDS)
def test_build_receives_the_memory_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       algorithm: str, build: dict[str, Any]) -> None:
    try:
        cls = registry.get(algorithm)
    except Exception as exc:  # an optional library that is not installed
        pytest.skip(f"{algorithm}: {exc}")
    seen: list[np.ndarray] = []
    original = cls.build

    def spy(self: Any, data: np.ndarray) -> None:
        seen.append(data)
        original(self, data)

    monkeypatch.setattr(cls, "build", spy)
    paths = _files(tmp_path, 500, 16)
    messages = list(run_inline(_task(algorithm, build, paths, 16)))
    failures = [p for k, p in messages if k == "failure"]
    if failures and "not installed" in failures[0].message:
        pytest.skip(failures[0].message)
    assert not failures, failures
    assert len(seen) == 1 and _is_mapped(seen[0]), type(seen[0])
    assert seen[0].shape == (500, 16) and not seen[0].flags.writeable


def test_is_mapped_tells_a_copy_from_a_view(tmp_path: Path) -> None:
    paths = _files(tmp_path, 10, 4)
    mapped = np.load(paths[0], mmap_mode="r")
    assert _is_mapped(mapped) and _is_mapped(mapped[2:5]) and _is_mapped(np.asarray(mapped))
    assert not _is_mapped(np.array(mapped)) and not _is_mapped(np.ascontiguousarray(mapped[::2]))


def _built(messages: list[tuple[str, Any]]) -> tuple[Any, dict[str, Any]]:
    kinds = dict(messages)
    assert "failure" not in kinds, kinds.get("failure")
    return kinds["built"], kinds["done"]


def test_index_memory_counts_no_file_pages(tmp_path: Path) -> None:
    """bruteforce (euclidean) reads every page of the 32 MiB map for its norms, and keeps
    searching the map: its index memory is the norms, not the file. Faiss Flat copies the
    data into its own storage once: index memory is that copy, within 10 %, not twice it."""
    n, dim = 65536, 128
    data_bytes = n * dim * 4
    paths = _files(tmp_path, n, dim)
    brute, done = _built(list(run_in_worker(_task("bruteforce", {}, paths, dim))))
    assert brute.index_uss_bytes < data_bytes // 8
    assert brute.index_bytes >= data_bytes  # the backend's own estimate is kept beside it
    assert done["peak_anon_bytes"] > 0
    base = done["peak_anon_bytes"]  # the worker itself, plus the norms
    flat, done = _built(list(run_in_worker(_task("faiss", {"factory": "Flat"}, paths, dim))))
    assert 0.9 * data_bytes < flat.index_uss_bytes < 1.1 * data_bytes
    # the whole run, the backend's estimate included (serialize_index built the whole
    # byte string in memory: a transient of two to three times the index)
    assert flat.index_uss_bytes <= done["peak_anon_bytes"] < base + 1.3 * data_bytes


def test_cap_counts_anonymous_memory_only(tmp_path: Path) -> None:
    """A cap below base + data: bruteforce, whose resident set holds the 64 MiB of mapped
    file pages it searches, runs to the end (an RSS cap killed it); Faiss Flat, whose own
    copy is anonymous memory, is stopped as oom with the data size in the line."""
    n, dim = 131072, 128
    data_bytes = n * dim * 4
    (tmp_path / "tiny").mkdir()
    tiny = _files(tmp_path / "tiny", 1000, dim)
    _, done = _built(list(run_in_worker(_task("bruteforce", {}, tiny, dim))))
    limit = done["peak_anon_bytes"] + data_bytes // 2  # the worker itself + half the data
    paths = _files(tmp_path, n, dim)
    _built(list(run_in_worker(_task("bruteforce", {}, paths, dim, limit=limit))))
    messages = list(run_in_worker(_task("faiss", {"factory": "Flat"}, paths, dim, limit=limit)))
    failures = [p for k, p in messages if k == "failure"]
    assert failures and failures[0].status == "oom", messages
    assert "anonymous memory" in failures[0].message
    assert "(0.06 GiB of data)" in failures[0].message


def test_faiss_estimate_counts_the_stream() -> None:
    import faiss

    from bench.algorithms.faiss_backend import serialized_size

    data = np.random.default_rng(0).standard_normal((3000, 16), dtype=np.float32)
    for factory in ("Flat", "IVF8,PQ4x4fs,RFlat", "HNSW8"):
        backend = registry.get("faiss")("euclidean", 16, factory=factory)
        backend.build(data)
        assert backend.index_bytes() == faiss.serialize_index(backend.index).nbytes
    binary = faiss.IndexBinaryFlat(64)
    binary.add(np.random.default_rng(1).integers(0, 256, (500, 8), dtype=np.uint8))
    assert (serialized_size(faiss, faiss.write_index_binary, binary)
            == faiss.serialize_index_binary(binary).nbytes)


def test_faiss_flat_chunked_add_has_no_reallocation_peak(tmp_path: Path) -> None:
    """Chunked adds into a Flat index reallocate its vector (old + new resident at once)
    unless it is sized first; sized, the anonymous growth never exceeds the index."""
    import threading

    from bench.algorithms.base import add_chunks
    from bench.core.memory import anonymous_bytes

    n, dim = 200_000, 64
    paths = _files(tmp_path, n, dim)
    data = np.load(paths[0], mmap_mode="r")
    chunks = list(add_chunks(data, chunk_bytes=3 << 20))
    assert len(chunks) > 10 and all(_is_mapped(c) for c in chunks)
    assert sum(len(c) for c in chunks) == n
    backend = registry.get("faiss")("euclidean", dim, factory="Flat")
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], anonymous_bytes())
            stop.wait(0.002)

    before = anonymous_bytes()
    thread = threading.Thread(target=watch)
    thread.start()
    try:
        backend.build(data)
    finally:
        stop.set()
        thread.join()
    assert backend.index.ntotal == n
    assert peak[0] - before < 1.1 * data.nbytes


def test_poll_figure_excludes_mapped_pages(tmp_path: Path) -> None:
    """The figure the parent polls for the cap and the peak (RSS less file pages)."""
    import psutil

    size = 64 << 20
    path = tmp_path / "pages.f32"
    np.ones(size // 4, dtype=np.float32).tofile(path)
    me = psutil.Process()
    before_rss, before = me.memory_info().rss, _anonymous(me)
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    assert float(mapped.sum(dtype=np.float64)) == size // 4
    assert me.memory_info().rss - before_rss > size // 2
    assert _anonymous(me) - before < size // 8
    del mapped


def test_report_states_the_worker_peak_against_the_data() -> None:
    from bench.process.frame import runs_frame
    from bench.process.report import run_rows

    results = {"dataset": {"feature_sets": {"vectors": {"data_bytes": 8_192_000_000}}},
               "runs": [{"id": "a", "label": "flat", "algorithm": "faiss", "status": "ok",
                         "k": 10, "recall": 1.0, "build_params": {"factory": "Flat"},
                         "query_params": {}, "peak_anon_bytes": 8_600_000_000},
                        {"id": "b", "label": "old", "algorithm": "faiss", "status": "ok",
                         "k": 10, "recall": 1.0, "build_params": {}, "query_params": {}}]}
    df = runs_frame(results)
    flat = df[df["id"] == "a"].iloc[0]
    assert flat["peak_mb"] == 8600.0 and abs(flat["peak_x_data"] - 1.0498) < 1e-3
    columns, body, _ = run_rows(df)
    assert "worker peak MB" in columns and "peak / data" in columns
    row = next(r for r in body if r[0].startswith("flat"))
    assert row[columns.index("peak / data")] == "1.05"
