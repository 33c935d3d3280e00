"""Memory at the original study's size: Faiss Flat and IVF through ``bench run`` (#20).

    python benchmarks/memory_scale.py                 # 1,000,000 x 128 and 500,000 x 4,096
    python benchmarks/memory_scale.py --only small    # 1,000,000 x 128 only (512 MB)
    python benchmarks/memory_scale.py --large-n 200000

Each size is a synthetic experiment (clustered float32, angular, 1,000 queries, k=10)
run by a real ``bench run`` process, the driver, whose anonymous memory this script
samples every 0.1 s (and kills the driver's process group past ``--driver-cap-gb``).
Workers are capped by the experiment's ``memory_limit_gb`` (anonymous memory).
Per build it prints: data bytes, index bytes (the backend's estimate) and index
memory (growth of the worker's anonymous memory), the worker's peak anonymous memory
and peak RSS, peak / index bytes and peak / (index bytes + one add chunk), the
driver's peak anonymous memory, build and search time. File-backed pages of the
memory-mapped data (RSS, page cache) are reclaimable and are not anonymous memory.

The 500,000 x 4,096 size needs about 8.2 GB for the Flat index plus the page cache of
the mapped file: it refuses to start unless ``MemAvailable`` is at least
``--require-free-gb`` (default 14) so a shared machine is not taken down.
Timings on a shared 2-core machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GB = 1e9


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_anon(pid: int) -> int:
    """RssAnon of a process (bytes), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def experiment(name: str, n: int, dim: int, ivf: str, train_size: int, nprobe: list[int],
               limit_gb: float, threads: int) -> dict[str, Any]:
    return {
        "name": name, "seed": 42,
        "description": f"#20 memory scale: {n:,} x {dim:,} float32, angular",
        "dataset": {"name": "synthetic", "kind": "clustered", "n": n, "n_queries": 1000,
                    "dim": dim, "n_clusters": 256},
        "metric": "angular", "k": 10, "mode": "batch", "threads": threads, "runs": 1,
        "timeout": 3600, "memory_limit_gb": limit_gb,
        "algorithms": [
            {"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}},
            {"algorithm": "faiss", "name": "ivf",
             "build": {"factory": f"{ivf},Flat", "train_size": train_size},
             "query": {"nprobe": nprobe}},
        ],
    }


def run_driver(spec: dict[str, Any], work: Path, cap_bytes: int,
               floor_bytes: int) -> tuple[dict[str, Any], int, float]:
    """``bench run`` in a child process; (results.json, driver peak anonymous, wall s).

    Killed with its workers when the driver passes ``cap_bytes`` of anonymous memory or
    the machine's MemAvailable falls below ``floor_bytes`` (a shared machine)."""
    import yaml

    path = work / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "BENCH_RESULTS": str(work / "results"),
           "BENCH_CACHE": str(work / "cache"), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", "from bench.cli.main import main; main()", "run",
           str(path), "--force", "--no-progress"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, rss_anon(proc.pid))
        free = mem_available()
        if peak > cap_bytes or free < floor_bytes:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver, its forkserver and workers
            proc.wait()
            raise SystemExit(f"killed: driver anonymous memory {peak / GB:.2f} GB (cap "
                             f"{cap_bytes / GB:.2f}), machine MemAvailable {free / GB:.2f} GB "
                             f"(floor {floor_bytes / GB:.2f})")
        time.sleep(0.1)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench run exited with {proc.returncode}")
    results = json.loads((work / "results" / spec["name"] / "results.json").read_text())
    return results, peak, wall


def rows(results: dict[str, Any], driver_peak: int, chunk: int) -> list[dict[str, Any]]:
    sets = results["dataset"]["feature_sets"]
    data_bytes = next(iter(sets.values()))["data_bytes"]
    out, seen = [], set()
    for run in results["runs"]:
        label = run["label"]
        if label in seen:
            continue
        seen.add(label)
        same = [r for r in results["runs"] if r["label"] == label]
        index = run.get("index_bytes") or 0
        peak = run.get("peak_anon_bytes") or 0
        out.append({
            "build": label, "status": run["status"], "data_bytes": data_bytes,
            "index_bytes": index, "index_memory_bytes": run.get("index_uss_bytes"),
            "worker_peak_anon_bytes": peak, "worker_peak_rss_bytes": run.get("peak_rss_bytes"),
            "peak_over_index": peak / index if index else None,
            "peak_over_index_plus_chunk": peak / (index + chunk) if index else None,
            "driver_peak_anon_bytes": driver_peak, "build_time_s": run.get("build_time_s"),
            "search_time_s": {_params(r): r.get("search_time_s") for r in same},
            "recall": {_params(r): r.get("recall") for r in same},
            "error": run.get("error"),
        })
    return out


def _params(run: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in (run.get("query_params") or {}).items()) or "-"


def show(title: str, table: list[dict[str, Any]]) -> None:
    print(f"\n## {title}")
    print("| build | status | data GB | index GB (estimate) | index memory GB (anon growth) "
          "| worker peak anon GB | worker peak RSS GB | peak / index | peak / (index + chunk) "
          "| driver peak anon GB | build s | search s (params: s) | recall |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")

    def gb(v: Any) -> str:
        return f"{v / GB:.3f}" if v else "-"

    def ratio(v: Any) -> str:
        return f"{v:.3f}" if v else "-"

    for r in table:
        searches = ", ".join(f"{k}: {v:.2f}" for k, v in r["search_time_s"].items() if v)
        recalls = ", ".join(f"{v:.3f}" for v in r["recall"].values() if v is not None)
        build = f"{r['build_time_s']:.1f}" if r["build_time_s"] else "-"
        print(f"| {r['build']} | {r['status']} | {gb(r['data_bytes'])} | {gb(r['index_bytes'])} "
              f"| {gb(r['index_memory_bytes'])} | {gb(r['worker_peak_anon_bytes'])} "
              f"| {gb(r['worker_peak_rss_bytes'])} | {ratio(r['peak_over_index'])} "
              f"| {ratio(r['peak_over_index_plus_chunk'])} | {gb(r['driver_peak_anon_bytes'])} "
              f"| {build} | {searches} | {recalls} |")
        if r["error"]:
            print(f"  error: {r['error']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("small", "large"), default=None)
    parser.add_argument("--large-n", type=int, default=500_000)
    parser.add_argument("--small-n", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--require-free-gb", type=float, default=14.0)
    parser.add_argument("--worker-limit-gb", type=float, default=None,
                        help="memory_limit_gb of the large experiment (default: 1.4 x data)")
    parser.add_argument("--driver-cap-gb", type=float, default=4.0)
    parser.add_argument("--min-available-gb", type=float, default=2.0,
                        help="kill the run when the machine's MemAvailable falls below this")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for cache and results (kept, so a rerun reuses data "
                             "and ground truth); default a temporary folder, removed")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    from bench.algorithms.base import ADD_CHUNK_BYTES

    sizes = []
    if args.only in (None, "small"):
        sizes.append(("memscale-small", args.small_n, 128, "IVF1024", 50_000, [1, 16]))
    if args.only in (None, "large"):
        sizes.append(("memscale-large", args.large_n, 4096, "IVF1024", 50_000, [1, 16]))
    temp = None
    work = args.work
    if work is None:
        temp = tempfile.TemporaryDirectory(prefix="memscale-")
        work = Path(temp.name)
    work.mkdir(parents=True, exist_ok=True)
    everything = {}
    try:
        for name, n, dim, ivf, train, nprobe in sizes:
            data_gb = n * dim * 4 / GB
            if dim > 1024:
                free = mem_available() / GB
                if free < args.require_free_gb:
                    print(f"{name}: only {free:.1f} GB available, need "
                          f"{args.require_free_gb:g}; skipped (try --large-n 200000)")
                    continue
            limit = args.worker_limit_gb or max(2.0, round(1.4 * data_gb + 1.0, 1))
            spec = experiment(name, n, dim, ivf, train, nprobe, limit, args.threads)
            print(f"{name}: {n:,} x {dim:,} ({data_gb:.2f} GB), worker cap {limit:g} GiB "
                  f"anonymous, driver cap {args.driver_cap_gb:g} GB, "
                  f"{mem_available() / GB:.1f} GB available", flush=True)
            results, peak, wall = run_driver(spec, work, int(args.driver_cap_gb * GB),
                                             int(args.min_available_gb * GB))
            table = rows(results, peak, ADD_CHUNK_BYTES)
            everything[name] = {"n": n, "dim": dim, "wall_s": wall, "rows": table}
            show(f"{n:,} x {dim:,} float32 angular ({wall:.0f} s wall, add chunk "
                 f"{ADD_CHUNK_BYTES / 2**20:.0f} MiB)", table)
    finally:
        if temp is not None:
            temp.cleanup()
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
