"""The Ray executor, sharded search and distributed extraction on a local 2-CPU Ray.

One Ray instance serves the whole module (starting one costs seconds); every test keeps
its data small so the file stays well under a minute on 2 cores.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'featbench[ray]')")

from bench.algorithms import registry  # noqa: E402
from bench.algorithms.base import Backend  # noqa: E402
from bench.run.runner import RunOptions, run_experiment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class RayWorkerKiller(Backend):
    """Kills the Ray worker that runs its build, like a node lost mid-run."""

    metrics = ("euclidean",)

    def build(self, data: np.ndarray) -> None:
        import psutil

        proc = psutil.Process()
        while proc is not None:
            cmd = " ".join(proc.cmdline())
            if "ray::" in cmd or "default_worker" in cmd:
                os.kill(proc.pid, signal.SIGKILL)
                time.sleep(2)
                os._exit(1)
            proc = proc.parent()
        raise RuntimeError("not running under a Ray worker")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def local_ray():
    from bench.run.executors import ray_executor

    ray_executor.configure(None)
    ray_executor.ensure_ray(num_cpus=2)
    yield ray
    ray_executor.shutdown()


def mini_quickstart(tmp_path: Path, name: str, extra_algorithms: list | None = None) -> Path:
    """The built-in quickstart, shrunk: same dataset kind and index families."""
    spec = yaml.safe_load((ROOT / "bench/config/experiments/quickstart.yaml").read_text())
    # build_threads 1: a multi-threaded hnswlib build differs from run to run
    spec.update(name=name, runs=1, timeout=60, build_threads=1)
    spec["dataset"].update(n=3000, n_queries=100, dim=16, n_clusters=16)
    keep = {"faiss-flat", "faiss-ivf", "hnswlib"}
    algos = [a for a in spec["algorithms"] if a.get("name", a["algorithm"]) in keep]
    for a in algos:
        if a.get("name") == "faiss-ivf":
            a["build"] = {"factory": "IVF16,Flat"}
            a["query"] = {"nprobe": [1, 4]}
        if a["algorithm"] == "hnswlib":
            a["query"] = {"ef": [10, 40]}
    spec["algorithms"] = algos + (extra_algorithms or [])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_ray_executor_matches_local_recall(local_ray, tmp_path: Path) -> None:
    local = run_experiment(mini_quickstart(tmp_path, "q-local"),
                           RunOptions(executor="local", progress=False))
    on_ray = run_experiment(mini_quickstart(tmp_path, "q-ray"),
                            RunOptions(executor="ray", progress=False))
    assert on_ray.data["executor"] == "ray"
    a = {r["id"]: r for r in local.data["runs"]}
    b = {r["id"]: r for r in on_ray.data["runs"]}
    assert set(a) == set(b) and len(a) == 5
    for rid, run in a.items():
        assert run["status"] == b[rid]["status"] == "ok", b[rid].get("error")
        assert b[rid]["recall"] == run["recall"], run["label"]
        assert b[rid]["build_time_s"] > 0 and b[rid]["qps"] > 0


@pytest.mark.parametrize(("inner", "metric", "params", "local"), [
    # shards in Ray actors: also covered through the ray executor below
    ("bruteforce", "euclidean", {}, True),
    ("faiss", "angular", {"factory": "Flat"}, True),
    ("faiss", "ip", {"factory": "Flat"}, True),
])
def test_sharded_exact_equals_unsharded(inner: str, metric: str,
                                        params: dict, local: bool) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(1500, 24)).astype(np.float32)
    queries = rng.normal(size=(60, 24)).astype(np.float32)
    dim = 24
    if metric == "angular":
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    plain = registry.get(inner)(metric, dim, **params)
    plain.build(data)
    want_d, want_i = plain.search(queries, 10)
    sharded = registry.get("sharded")(metric, dim, backend=inner, shards=2,
                                      backend_params=params, local=local)
    sharded.build(data)
    got_d, got_i = sharded.search(queries, 10)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-5)
    extra = sharded.extra_metrics()
    assert extra["shards"] == 2 and extra["shard0_index_bytes"] > 0
    assert sharded.index_bytes() == extra["shard0_index_bytes"] + extra["shard1_index_bytes"]
    sharded.close()


def test_sharded_passes_query_params_and_rejects_unknown() -> None:
    from bench.core.errors import BenchError

    rng = np.random.default_rng(5)
    data = rng.normal(size=(2000, 16)).astype(np.float32)
    sharded = registry.get("sharded")("euclidean", 16, backend="faiss", shards=3, local=True,
                                      backend_params={"factory": "IVF8,Flat"})
    sharded.build(data)
    sharded.set_query_params(nprobe=8)  # all lists: exact on every shard
    exact = registry.get("sharded")("euclidean", 16, backend="bruteforce", shards=2,
                                    local=True)
    exact.build(data)
    np.testing.assert_array_equal(sharded.search(data[:20], 5)[1], exact.search(data[:20], 5)[1])
    with pytest.raises(BenchError, match="nprobe|no_such"):
        sharded.set_query_params(no_such=1)
    sharded.close()
    exact.close()


def test_killed_ray_worker_fails_only_its_run_and_sharded_runs(
        local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray worker killed mid-build fails that run cleanly; the builds after it (a
    sharded run whose actors join the same cluster) still complete. Arrays travel
    through the object store here, as on a cluster without a shared filesystem."""
    monkeypatch.setenv("BENCH_RAY_SHIP_ARRAYS", "1")
    path = mini_quickstart(tmp_path, "q-kill")
    spec = yaml.safe_load(path.read_text())
    spec["algorithms"] = [
        {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
        {"algorithm": "test_ray:RayWorkerKiller", "name": "killer"},
        {"algorithm": "sharded", "name": "flat-x2",
         "build": {"backend": "faiss", "shards": 2, "backend_params": {"factory": "Flat"}}},
    ]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    results = run_experiment(path, RunOptions(executor="ray", progress=False))
    runs = {r["label"]: r for r in results.data["runs"]}
    assert len(results.data["runs"]) == 3
    dead = runs["killer"]
    assert dead["status"] == "crashed" and dead["stage"] == "build"
    assert "ray worker lost" in dead["error"]
    assert runs["flat-x2"]["status"] == "ok", runs["flat-x2"].get("error")
    assert runs["flat-x2"]["recall"] == runs["flat"]["recall"] == 1.0
    assert runs["flat-x2"]["extra"]["shards"] == 2
    assert runs["flat-x2"]["extra"]["shard1_index_bytes"] > 0
    # exact search over 2 shards in Ray actors: exactly the unsharded neighbours
    folder = results.path.parent
    sharded = np.load(folder / runs["flat-x2"]["neighbors_file"])
    np.testing.assert_array_equal(sharded, np.load(folder / runs["flat"]["neighbors_file"]))


def _images(folder: Path, n: int) -> list:
    from PIL import Image

    from bench.core.items import Item

    rng = np.random.default_rng(11)
    folder.mkdir()
    items = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
        items.append(Item(id=f"img:{i}", identity=f"img:{i}", path=path))
    (folder / "007.png").write_bytes(b"not a png at all")  # unreadable: skipped, not fatal
    return items


def test_distributed_extraction_matches_store_and_resumes_per_shard(local_ray,
                                                                    tmp_path: Path) -> None:
    from bench.extractors import registry as extractors
    from bench.features import store
    from bench.features.ray_map import _extract_shard, entry_path, extract_features_ray, split

    items = _images(tmp_path / "img", 40)
    cls = extractors.get("dhash")
    extractor = cls(cls.Options())
    want = store.extract_features(extractor, items, cache_dir=tmp_path / "c1",
                                  dataset_fingerprint="d", workers=1, progress=False)
    # an earlier run finished shard 0 and died: its chunk is on disk
    cache = tmp_path / "c2"
    shards = split(len(items), 4)
    pos, feats, skipped = _extract_shard(extractor, shards[0], [items[i] for i in shards[0]])
    entry = entry_path(extractor, items, cache, "d")
    width, dtype = store._output_spec(extractor)
    rows = store._open_rows(entry, len(items), width, dtype)  # features go into its rows
    writer = store._ChunkWriter(entry / "chunks", 0, rows)
    writer.add(pos, feats, skipped)
    writer.flush()
    # same size and mtime, other content: recomputing shard 0 would now skip these items
    for i in shards[0].tolist():
        if i == 7:
            continue
        st = items[i].path.stat()
        items[i].path.write_bytes(b"x" * st.st_size)
        os.utime(items[i].path, ns=(st.st_atime_ns, st.st_mtime_ns))
    got = extract_features_ray(extractor, items, cache_dir=cache, dataset_fingerprint="d",
                               shards=4, progress=False)
    np.testing.assert_array_equal(got.kept, want.kept)
    np.testing.assert_array_equal(np.asarray(got.features), np.asarray(want.features))
    assert got.skipped == want.skipped and [s[0] for s in got.skipped] == ["img:7"]
    assert not (entry / "chunks").exists()
    # the assembled entry is the store's: a local run is now a cache hit
    again = store.extract_features(extractor, items, cache_dir=cache, dataset_fingerprint="d",
                                   workers=1, progress=False)
    assert again.path == got.path


def test_without_ray_a_clear_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bench.core.errors import MissingDependencyError
    from bench.run.executors import ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(MissingDependencyError, match=r"featbench\[ray\]"):
        registry.get("sharded")("euclidean", 8, shards=2)
    with pytest.raises(MissingDependencyError, match=r"featbench\[ray\]"):
        list(ray_executor.run_on_ray(None))  # type: ignore[arg-type]
    # in-process shards need no ray
    registry.get("sharded")("euclidean", 8, shards=2, local=True)


def test_unreachable_address_fails_fast_with_the_option_name() -> None:
    from bench.core.errors import BenchError
    from bench.run.executors import ray_executor

    # checked by a plain TCP connect first: ray.init itself retries for minutes
    with pytest.raises(BenchError, match=r"127\.0\.0\.1:1.*--address"):
        ray_executor._check_reachable("127.0.0.1:1")


def test_ray_executor_extracts_item_features_through_the_runner(local_ray, tmp_path: Path,
                                                                 monkeypatch) -> None:
    """`bench run --executor ray` on an image experiment: extraction runs as Ray tasks
    (not the local store) and gives exactly the local run's features and hit rates."""
    from bench.features import ray_map as ray_extract

    calls = []
    real = ray_extract.extract_features_ray

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(ray_extract, "extract_features_ray", spy)
    spec = {
        "name": "img", "seed": 3, "metric": "hamming", "k": 5, "runs": 1, "timeout": 60,
        "relevance": "identity",
        "dataset": {"name": "copydetect-mini", "n_distractors": 30, "workers": 1,
                    "progress": False, "attacks": ["jpeg_50", "rotate_5", "crop_10"]},
        "extractor": {"name": "dhash"},
        "algorithms": [{"algorithm": "faiss-binary", "build": {"index_binary_factory": "BFlat"}}],
    }
    results = {}
    for executor in ("local", "ray"):
        monkeypatch.setenv("BENCH_CACHE", str(tmp_path / f"cache-{executor}"))
        path = tmp_path / f"{executor}.yaml"
        path.write_text(yaml.safe_dump({**spec, "name": f"img-{executor}"}))
        results[executor] = run_experiment(path, RunOptions(executor=executor, progress=False))
    assert len(calls) == 2 and min(calls) > 0  # database, then queries, both on Ray
    local, on_ray = (results[e].data["runs"][0] for e in ("local", "ray"))
    assert local["status"] == on_ray["status"] == "ok", on_ray.get("error")
    assert on_ray["hit_rate"] == local["hit_rate"] > 0.5
