"""`--parallel N` with the local executor: concurrent build points where nothing is timed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import small_experiment

from bench.algorithms.bruteforce import BruteForceBackend
from bench.cli.main import cli
from bench.core.errors import BenchError
from bench.run.runner import RunOptions, run_experiment


class Rendezvous(BruteForceBackend):
    """Exact search whose build waits until its peer's build has started: two of them
    finish only when two build points really run at the same time. With ``hold`` the
    build then also waits for that file (a test's cue: both are running now)."""

    def __init__(self, metric: str, dim: int, *, folder: str, me: str, peer: str,
                 wait_s: float = 20.0, hold: str | None = None) -> None:
        super().__init__(metric, dim)
        self.folder, self.me, self.peer, self.wait_s = Path(folder), me, peer, wait_s
        self.hold = Path(hold) if hold else None

    def build(self, data: np.ndarray) -> None:
        (self.folder / self.me).touch()
        wait_for(self.folder / self.peer, self.wait_s,
                 f"{self.peer} never started: build points ran one at a time")
        if self.hold is not None:
            wait_for(self.hold, 60.0, f"{self.hold} never appeared")
        super().build(data)


def wait_for(path: Path, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.05)


def rendezvous_pair(folder: Path, **extra: object) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    return [{"algorithm": "test_parallel:Rendezvous", "name": f"meet-{a}",
             "build": {"folder": str(folder), "me": a, "peer": b, **extra}}
            for a, b in (("a", "b"), ("b", "a"))]


def test_parallel_runs_build_points_at_once_with_sequential_results(write_experiment,
                                                                     tmp_path: Path) -> None:
    spec = small_experiment(timing=False)
    spec["algorithms"] = rendezvous_pair(tmp_path / "meet", wait_s=15.0) + spec["algorithms"]
    parallel = run_experiment(write_experiment(spec), RunOptions(progress=False, parallel=2))
    runs = {r["id"]: r for r in parallel.data["runs"]}
    assert len(runs) == 5 and parallel.data["parallel"] == 2
    assert all(r["status"] == "ok" for r in runs.values()), [r.get("error") for r in runs.values()]
    assert {r["label"] for r in runs.values() if r["recall"] == 1.0} >= {"meet-a", "meet-b",
                                                                         "flat"}
    assert all(r["node"]["hostname"] and r["node"]["cpu"] for r in runs.values())
    # the same grid one at a time: identical recall (the rendezvous would time out there)
    spec["name"] = "small-seq"
    spec["algorithms"] = spec["algorithms"][2:]
    seq = {r["id"]: r for r in run_experiment(write_experiment(spec, "seq.yaml"),
                                              RunOptions(progress=False)).data["runs"]}
    for rid, run in seq.items():
        assert runs[rid]["recall"] == run["recall"]


def test_parallel_refused_when_the_experiment_times(write_experiment) -> None:
    path = write_experiment(small_experiment())
    with pytest.raises(BenchError, match="--parallel 2 needs `timing: false`"):
        run_experiment(path, RunOptions(progress=False, parallel=2))
    result = CliRunner().invoke(cli, ["run", str(path), "--parallel", "2", "--no-progress"])
    assert result.exit_code == 2
    assert "timing: false" in result.output and len(result.output.strip().splitlines()) == 1
    with pytest.raises(BenchError, match="--executor local only"):
        run_experiment(write_experiment(small_experiment(timing=False)),
                       RunOptions(progress=False, parallel=2, executor="inline"))


def test_progress_names_the_node_of_each_running_build_point() -> None:
    from bench.run.dispatch import Job
    from bench.run.executors.task import NodeReport
    from bench.run.runner import _describe_running

    def job(label: str, node: NodeReport | None) -> Job:
        made = Job(None, None, None, None, label)  # type: ignore[arg-type]
        made.node = node
        return made

    a = NodeReport("host-a", "cpu", 2, ray_node_id="abcdef123456")
    b = NodeReport("host-b", "cpu", 2, ray_node_id="987654fedcba")
    text = _describe_running([job("flat", a), job("ivf nlist=16", b)])
    assert text == "host-a:abcdef: flat | host-b:987654: ivf nlist=16"
    assert _describe_running([job("flat", NodeReport("here", "cpu", 2))]) == "flat"
    assert _describe_running([]) == "runs"
