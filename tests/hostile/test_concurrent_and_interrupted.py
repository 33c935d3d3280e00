"""Runs that meet each other or get stopped: a second run of the same experiment, a
dataset changed under the same name, SIGTERM, failed runs retried, --force stopped
half-way. Each keeps every finished run and says what happened in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from click.testing import CliRunner
from conftest import small_experiment
from hostile_checks import one_error_line

from bench.cli.main import cli

TESTS = Path(__file__).resolve().parents[1]
ENV_PATH = os.pathsep.join([str(TESTS), str(TESTS / "hostile")])


def _results(root: Path, name: str = "small") -> Path:
    return root / "results" / name / "results.json"


def _runs(root: Path, name: str = "small") -> list[dict]:
    return json.loads(_results(root, name).read_text())["runs"]


def _cmd(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli.main", "run", "--no-progress", *extra, str(path)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [ENV_PATH, os.environ.get("PYTHONPATH", "")])}


def _wait_for_runs(root: Path, n: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(_runs(root)) >= n:
                return
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} runs appeared")


def test_a_second_run_is_refused_while_the_first_holds_the_folder(write_experiment,
                                                                   isolated_outputs):
    path = write_experiment(small_experiment())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from bench.results.store import hold_lock; hold_lock(Path(sys.argv[1])); "
         "print('held', flush=True); time.sleep(60)",
         str(isolated_outputs / "results" / "small")],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(cli, ["run", "--no-progress", str(path)])
        assert result.exit_code == 2, result.output
        line = one_error_line(result)
        assert "another bench run is writing these results" in line
        assert f"pid {holder.pid}" in line
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with its holder, nothing stale
        holder.wait()
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(path)])
    assert result.exit_code == 0, result.output
    assert len(_runs(isolated_outputs)) == 3


def test_changed_dataset_under_the_same_name_is_refused_then_kept_aside(write_experiment,
                                                                        isolated_outputs):
    runner = CliRunner()
    path = write_experiment(small_experiment())
    assert runner.invoke(cli, ["run", "--no-progress", str(path)]).exit_code == 0
    first = _results(isolated_outputs).read_text()
    changed = small_experiment()
    changed["dataset"] = {**changed["dataset"], "n": 2500}
    path = write_experiment(changed)
    result = runner.invoke(cli, ["run", "--no-progress", str(path)])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "holds 3 runs of another version of the dataset" in line and "--force" in line
    assert _results(isolated_outputs).read_text() == first  # nothing lost
    result = runner.invoke(cli, ["run", "--no-progress", "--force", str(path)])
    assert result.exit_code == 0, result.output
    kept = [p for p in _results(isolated_outputs).parent.glob("results.*.json")]
    assert len(kept) == 1 and kept[0].read_text() == first
    assert len(_runs(isolated_outputs)) == 3


def test_retry_failed_redoes_only_the_failed_runs(write_experiment, isolated_outputs, tmp_path):
    flag = tmp_path / "crash-now"
    flag.write_text("1")
    spec = small_experiment()
    spec["algorithms"].append({"algorithm": "plugins_for_tests:CrashWhileFlagged",
                               "name": "flaky", "build": {"flag": str(flag)}})
    path = write_experiment(spec)
    env = _env()
    subprocess.run(_cmd(path), env=env, check=False, capture_output=True)
    before = {r["label"] + str(r["query_params"]): r for r in _runs(isolated_outputs)}
    assert before["flaky{}"]["status"] == "crashed"
    flag.unlink()  # the fault is gone; a plain re-run still skips the recorded crash
    subprocess.run(_cmd(path), env=env, check=True, capture_output=True)
    assert {r["status"] for r in _runs(isolated_outputs) if r["label"] == "flaky"} == {
        "crashed"}
    subprocess.run(_cmd(path, "--retry-failed"), env=env, check=True, capture_output=True)
    after = {r["label"] + str(r["query_params"]): r for r in _runs(isolated_outputs)}
    assert after["flaky{}"]["status"] == "ok"
    for key, run in before.items():  # the runs that had succeeded were not measured again
        if run["status"] == "ok":
            assert after[key]["finished"] == run["finished"]


def test_force_stopped_half_way_loses_no_run(write_experiment, isolated_outputs):
    spec = small_experiment()
    spec["algorithms"] = [
        {"algorithm": "plugins_for_tests:SlowSearch", "name": f"slow{i}",
         "build": {"delay_s": 0.3 + i / 100}} for i in range(5)]
    path = write_experiment(spec)
    env = _env()
    subprocess.run(_cmd(path), env=env, check=True, capture_output=True)
    first = {r["id"]: r["finished"] for r in _runs(isolated_outputs)}
    assert len(first) == 5
    time.sleep(1.1)  # `finished` has one-second resolution
    proc = subprocess.Popen(_cmd(path, "--force"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:  # kill once some runs were re-measured
        runs = {r["id"]: r["finished"] for r in _runs(isolated_outputs)}
        if sum(runs[i] != first[i] for i in runs) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    runs = {r["id"]: r["finished"] for r in _runs(isolated_outputs)}
    assert set(runs) == set(first)  # every run still there, old or re-measured
    assert 2 <= sum(runs[i] != first[i] for i in runs) < 5


def test_sigterm_stops_the_worker_keeps_finished_runs_and_exits_143(write_experiment,
                                                                     isolated_outputs):
    spec = small_experiment()
    spec["algorithms"] = [{"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
                          {"algorithm": "plugins_for_tests:Sleeper", "name": "sleeper",
                           "build": {"seconds": 60}}]
    path = write_experiment(spec)
    proc = subprocess.Popen(_cmd(path), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _wait_for_runs(isolated_outputs, 1, proc)
    deadline = time.time() + 30
    workers: list[psutil.Process] = []
    while time.time() < deadline and not workers:  # the sleeper's worker has started
        workers = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.05)
    assert workers
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, output
    assert "Traceback" not in output and "terminated" in output
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "a worker outlived the run"
    assert [r["label"] for r in _runs(isolated_outputs)] == ["flat"]
