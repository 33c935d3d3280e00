"""The ray executor on a real two-node cluster (ray.cluster_utils, one bench_slot each).

Build points run side by side, one per node; every point is in results.json as soon as
it arrives; a node lost mid-run fails only the points it ran, and a re-run (or a re-run
after a SIGKILL of the driver) completes the grid without losing or repeating a point.
Ground truth is split by database shard over the cluster and equals the local one.
One cluster serves the module (starting it costs ~10 s on 2 shared cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'featbench[ray]')")

from test_parallel import Rendezvous, rendezvous_pair, wait_for  # noqa: E402

from bench.core.cluster import SLOT, import_path  # noqa: E402
from bench.run.runner import RunOptions, run_experiment  # noqa: E402

TESTS = Path(__file__).resolve().parent
STORE = 100 * 2**20
#: node death noticed in about a second instead of Ray's default ~30 s
FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
               "health_check_initial_delay_ms": 0}


class Gate(Rendezvous):
    """Builds only once another build point's record is in results.json: proves each
    point is written the moment it arrives, not at the end of the grid. Then waits for
    ``hold`` (the test's cue), touching ``<hold>.waiting`` first."""

    def __init__(self, metric: str, dim: int, *, results: str, after: str, hold: str) -> None:
        super().__init__(metric, dim, folder=str(Path(hold).parent), me="gate", peer="gate")
        self.results, self.after, self.gate = Path(results), after, Path(hold)

    def build(self, data: np.ndarray) -> None:
        deadline = time.monotonic() + 30
        while not self._written():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.after} never appeared in {self.results}")
            time.sleep(0.05)
        Path(f"{self.gate}.waiting").touch()
        wait_for(self.gate, 60.0, f"{self.gate} never appeared")
        self.hold = None
        super().build(data)

    def _written(self) -> bool:
        try:
            runs = json.loads(self.results.read_text())["runs"]
        except (OSError, ValueError, KeyError):
            return False
        return any(r["label"] == self.after and r["status"] == "ok" for r in runs)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    from bench.run.executors import ray_executor

    ray_executor.shutdown()  # a local instance of another test module
    old = os.environ.get("PYTHONPATH")
    # the nodes' workers import the test backends (and inherit this environment)
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(TESTS), *import_path()]))
    node = {"num_cpus": 1, "resources": {SLOT: 1}, "object_store_memory": STORE}
    c = Cluster(initialize_head=True, head_node_args={
        **node, "include_dashboard": False, "_system_config": FAST_HEALTH})
    worker = c.add_node(**node)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    ray_executor.configure(c.address)
    try:
        yield c, worker
    finally:
        ray_executor.shutdown()
        ray_executor.configure(None)
        c.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def grid(write_experiment, name: str, algorithms: list[dict], **extra) -> Path:
    spec = {"name": name, "seed": 5, "metric": "euclidean", "k": [5, 10], "runs": 1,
            "min_sample_s": 0, "max_point_s": 0, "timeout": 60, "timing": False,
            "dataset": {"name": "synthetic", "kind": "clustered", "n": 2000,
                        "n_queries": 50, "dim": 16, "n_clusters": 8},
            "algorithms": algorithms, **extra}
    return write_experiment(spec, f"{name}.yaml")


FAISS = [
    {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
    {"algorithm": "faiss", "name": "ivf", "build": {"factory": "IVF8,Flat"},
     "query": {"nprobe": [1, 3]}},
]


def _nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def test_build_points_run_side_by_side_with_local_recall(cluster, tmp_path, write_experiment,
                                                         monkeypatch) -> None:
    from bench.groundtruth import distributed

    algorithms = rendezvous_pair(tmp_path / "meet") + FAISS
    local = run_experiment(grid(write_experiment, "g-local", algorithms),
                           RunOptions(executor="local", parallel=2, progress=False))
    for marker in (tmp_path / "meet").iterdir():
        marker.unlink()
    calls = []
    real = distributed.exact_knn_ray
    monkeypatch.setattr(distributed, "exact_knn_ray",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache-ray"))  # ground truth again
    on_ray = run_experiment(grid(write_experiment, "g-ray", algorithms),
                            RunOptions(executor="ray", progress=False))
    a = {r["id"]: r for r in local.runs}
    b = {r["id"]: r for r in on_ray.runs}
    assert set(a) == set(b) and len(a) == 10
    for rid, run in a.items():
        assert run["status"] == b[rid]["status"] == "ok", b[rid].get("error")
        assert b[rid]["recall"] == run["recall"], run["label"]
    assert calls == [1]  # the ground truth went through the cluster's path
    used = {r["node"]["ray_node_id"] for r in b.values()}
    assert used == _nodes() and len(used) == 2
    assert all(r["node"]["cpu"] and r["node"]["hostname"] for r in b.values())
    assert {r["node"]["ray_node_id"] for r in a.values()} == {None}


@pytest.mark.parametrize("metric", ["euclidean", "ip", "l1", "hamming"])
def test_distributed_ground_truth_equals_local_with_ties(cluster, metric: str) -> None:
    from bench.groundtruth.distributed import exact_knn_ray
    from bench.groundtruth.exact import exact_knn

    rng = np.random.default_rng(2)
    base = rng.normal(size=(700, 12)).astype(np.float32)
    if metric == "hamming":  # packed codes: many equal distances, ties decided by id
        base = rng.integers(0, 256, size=(700, 4), dtype=np.uint8)
    data = np.concatenate([base, base[::-1], base[:300]])  # duplicates across shards
    queries = np.concatenate([base[:40], base[::-1][:40] ^ 1 if metric == "hamming"
                              else rng.normal(size=(40, 12)).astype(np.float32)])
    want_d, want_i = exact_knn(data, queries, 10, metric)
    got_d, got_i = exact_knn_ray(data, queries, 10, metric, shards=3)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_d, want_d)


def test_points_written_as_they_arrive_and_resume_after_driver_sigkill(
        cluster, tmp_path, write_experiment, isolated_outputs) -> None:
    c, _ = cluster
    hold = tmp_path / "hold"
    results_json = isolated_outputs / "results" / "g-kill" / "results.json"
    algorithms = [{"algorithm": "test_ray_cluster:Gate", "name": "gate",
                   "build": {"results": str(results_json), "after": "flat",
                             "hold": str(hold)}}] + FAISS
    path = grid(write_experiment, "g-kill", algorithms)
    driver = subprocess.Popen(
        [sys.executable, "-m", "bench.cli.main", "run", str(path), "--executor", "ray",
         "--address", c.address, "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the gate saw flat's record on disk while it was still building itself
        wait_for(Path(f"{hold}.waiting"), 90.0, "the gate never saw flat's record")
        deadline = time.monotonic() + 60
        while _ok(results_json) < 6:  # flat and ivf: 2 + 4 points, the gate in flight
            assert time.monotonic() < deadline and driver.poll() is None, driver.stderr
            time.sleep(0.1)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    before = {r["id"]: r for r in json.loads(results_json.read_text())["runs"]}
    assert len(before) == 6 and not any(r["label"] == "gate" for r in before.values())
    hold.touch()
    resumed = run_experiment(path, RunOptions(executor="ray", progress=False))
    ids = [r["id"] for r in resumed.runs]
    assert len(ids) == len(set(ids)) == 8
    assert all(r["status"] == "ok" for r in resumed.runs), [r.get("error") for r in resumed.runs]
    for rid, run in before.items():  # kept, not measured again
        assert next(r for r in resumed.runs if r["id"] == rid)["finished"] == run["finished"]


def _ok(path: Path) -> int:
    try:
        return sum(r["status"] == "ok" for r in json.loads(path.read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return 0


def test_lost_node_fails_only_its_points_and_rerun_completes(cluster, tmp_path,
                                                             write_experiment) -> None:
    c, worker = cluster
    hold = tmp_path / "hold"
    meet = tmp_path / "meet"
    path = grid(write_experiment, "g-node", rendezvous_pair(meet, hold=str(hold)) + FAISS)

    def kill_worker_node() -> None:
        wait_for(meet / "a", 60.0, "a never started")
        wait_for(meet / "b", 60.0, "b never started")
        c.remove_node(worker)  # both rendezvous builds are running, one on each node
        hold.touch()

    killer = threading.Thread(target=kill_worker_node, daemon=True)
    killer.start()
    results = run_experiment(path, RunOptions(executor="ray", progress=False))
    killer.join(5)
    runs = results.runs
    assert len(runs) == 10
    lost = [r for r in runs if r["status"] != "ok"]
    assert len(lost) == 2 and len({r["label"] for r in lost}) == 1  # one build's two k
    for r in lost:
        assert r["status"] == "crashed" and r["node_lost"] is True, r
        assert "ray worker lost" in r["error"]
        assert r["node"]["ray_node_id"] == worker.node_id
    assert all(r["node"]["ray_node_id"] != worker.node_id for r in runs if r["status"] == "ok")
    again = run_experiment(path, RunOptions(executor="ray", progress=False))
    assert len(again.runs) == 10
    assert all(r["status"] == "ok" for r in again.runs), [r.get("error") for r in again.runs]
    assert not any(r.get("node_lost") for r in again.runs)
