"""How much the gate's figures move on this machine, and what the gate then catches.

(a) The ``ci`` experiment (its algorithms and timing; dataset size from the options) run
    ``--runs`` times with the old measurement (3 back-to-back single passes per point,
    best kept: ``runs: 3, min_sample_s: 0, max_point_s: 0``, one worker) and the new one
    (the experiment's own timing: calibrated samples, CI stop rule, replicas), old and
    new alternated; per point the CV of the headline QPS across runs.
(b) Wall-time gate: false alarms over ``--pairs`` pairs of the unchanged new runs, and the
    detection rate of a slowdown injected into one configuration (``noise_plugin:Slowable``
    busy-waits F x its search's CPU time; ``--slow-mode sleep`` sleeps instead, which the
    CPU-time counter cannot see) at each ``--detect`` fraction: every
    slowed run is compared with every unchanged run, at each ``--tolerances``
    speed_ratio_drop; then the same runs judged on CPU-time samples (``--counter cpu``).
    Before that, per point, how far its speed ratio (QPS / reference QPS) moved between
    pairs of unchanged runs: what any wall-time tolerance has to stay above.
(c) With ``--instructions``: the same for ``counter: instructions`` (a smaller dataset;
    the slowdown repeats F of the queries, since sleeping executes no instructions), with
    ``instructions_rise`` = ``--instr-tolerance``.

    python benchmarks/noise.py                       # the full figures (long: ~1 h quiet)
    python benchmarks/noise.py --n 5000 --queries 300 --runs 4 --detect-runs 1 --instructions

Results go to a temporary folder; the caches are shared through it only.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE), str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])

from bench.core.stats import cv  # noqa: E402
from bench.gate.checks import headline_qps  # noqa: E402
from bench.gate.compare import (  # noqa: E402
    Tolerances,
    compare_results,
    reference_group,
    reference_runs,
)
from bench.results.record import record_key as match_key  # noqa: E402
from bench.results.record import run_name  # noqa: E402

OLD = {"runs": 3, "min_sample_s": 0.0, "max_point_s": 0.0, "replicas": 1}
SLOWABLE = "slowable"


def ci_spec(args: argparse.Namespace, slow_file: Path) -> dict[str, Any]:
    spec = yaml.safe_load((HERE.parent / "bench/config/experiments/ci.yaml").read_text())
    spec["dataset"].update(n=args.n, n_queries=args.queries)
    spec["algorithms"].append({"algorithm": "noise_plugin:Slowable", "name": SLOWABLE,
                               "build": {"factory": "IVF64,Flat", "slow_file": str(slow_file)},
                               "query": {"nprobe": 4}})
    return spec


def run(spec: dict[str, Any], tmp: Path, name: str) -> dict[str, Any]:
    from bench.run.runner import RunOptions, run_experiment

    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = run_experiment(path, RunOptions(progress=False, force=True))
    return copy.deepcopy(results.data)


def headline(run: dict[str, Any], old: bool) -> float:
    return run["qps_max"] if old and run.get("qps_max") else run["qps"]


def spread_table(old: list[dict], new: list[dict], first: str = "old CV") -> None:
    """CV per point; with --skip-old the first column is the CV of the new runs' best
    sample (qps_max), not the old measurement."""
    print("\n(a) QPS spread across runs (CV of each point's headline QPS)")
    print(f"{'point':58s} {first:>8s} {'new CV':>8s}")
    cvs: dict[str, list[float]] = {"old": [], "new": []}
    for key, first in ((match_key(r), r) for r in new[0]["runs"] if r["status"] == "ok"):
        row = []
        for label, files in (("old", old), ("new", new)):
            values = [headline(r, label == "old") for f in files for r in f["runs"]
                      if match_key(r) == key and r["status"] == "ok"]
            value = cv(values) if len(values) > 1 else float("nan")
            if values and len(values) > 1:
                cvs[label].append(value)
            row.append(value)
        print(f"{run_name(first)[:58]:58s} {row[0]:8.1%} {row[1]:8.1%}")
    for label in ("old", "new"):
        if cvs[label]:
            print(f"{label}: median CV {statistics.median(cvs[label]):.1%}, "
                  f"max {max(cvs[label]):.1%} over {len(cvs[label])} points")


def unchanged_pairs(count: int, pairs: int) -> list[tuple[int, int]]:
    """The first ``pairs`` pairs of ``count`` unchanged runs, the same for every figure."""
    return list(itertools.combinations(range(count), 2))[:pairs]


def ratio_moves(unchanged: list[dict], pairs: int) -> None:
    """Per point, |change| of its speed ratio over pairs of unchanged runs (median, max);
    the ratio as the gate forms it: headline QPS over its group's reference run."""
    def ratios(data: dict) -> dict:
        refs = reference_runs(data, None, "noise run")
        ok = [r for r in data["runs"] if r["status"] == "ok"]
        return {match_key(r): (run_name(r),
                               headline_qps(r) / headline_qps(refs[reference_group(r)]))
                for r in ok}

    table = [ratios(u) for u in unchanged]
    combos = unchanged_pairs(len(table), pairs)
    print("\nspeed ratio (QPS / reference QPS) moves between unchanged runs "
          f"({len(combos)} pairs)")
    for key, (name, _) in table[0].items():
        moves = sorted(abs(table[j][key][1] / table[i][key][1] - 1) for i, j in combos
                       if key in table[i] and key in table[j])
        if moves:
            print(f"  {name[:58]:58s} median {statistics.median(moves):6.1%} "
                  f"max {moves[-1]:6.1%}")


def gate_figures(unchanged: list[dict], slowed: dict[float, list[dict]], tol: Tolerances,
                 pairs: int, what: str) -> None:
    combos = unchanged_pairs(len(unchanged), pairs)
    alarms = 0
    checks = 0
    for i, j in combos:
        c = compare_results(unchanged[i], unchanged[j], tol)
        failed = [r for r in c.rows if r.failed]
        alarms += bool(failed)
        checks += len(c.rows)
        for r in failed:
            print(f"  false alarm {i}->{j}: {r.name}: {'; '.join(r.problems())}")
    print(f"{what}: false alarms in {alarms} of {len(combos)} pairs of unchanged runs "
          f"({checks} run comparisons)")
    for fraction, runs in slowed.items():
        hits = total = others = 0
        for base, cur in itertools.product(unchanged, runs):
            c = compare_results(base, cur, tol)
            for row in c.rows:
                if row.baseline and row.baseline.get("label") == SLOWABLE:
                    hits += row.failed
                    total += 1
                elif row.failed:
                    others += 1
        rate = hits / total if total else float("nan")
        print(f"{what}: slowdown {fraction:.0%}: detected in {hits} of {total} comparisons "
              f"({rate:.0%}); other runs failing in those comparisons: {others}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--detect", default="0.05,0.1,0.2")
    ap.add_argument("--detect-runs", type=int, default=3)
    ap.add_argument("--tolerances", default="0.05,0.075,0.1",
                    help="speed_ratio_drop values the same runs are judged with")
    ap.add_argument("--slow-mode", choices=["spin", "work", "sleep"], default="spin",
                    help="spin: busy-wait F x the search's CPU time (slows wall and CPU "
                         "time alike); work: search F of the queries again; sleep: sleep "
                         "F x the search time (wall time only)")
    ap.add_argument("--skip-old", action="store_true")
    ap.add_argument("--instructions", action="store_true")
    ap.add_argument("--instr-runs", type=int, default=4)
    ap.add_argument("--instr-detect", default="0.01,0.02")
    ap.add_argument("--instr-tolerance", type=float, default=0.01)
    ap.add_argument("--instr-n", type=int, default=5000)
    ap.add_argument("--instr-queries", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="featbench-noise-"))
    os.environ["BENCH_RESULTS"] = str(tmp / "results")
    os.environ.setdefault("BENCH_CACHE", str(tmp / "cache"))
    slow_file = tmp / "slow.txt"
    slow_file.write_text("sleep 0")
    spec = ci_spec(args, slow_file)
    old_spec = {**spec, **OLD}
    old, new = [], []
    for i in range(args.runs):  # alternated, so drift of the machine hits both alike
        slow_file.write_text("sleep 0")
        if not args.skip_old:
            old.append(run(old_spec, tmp, "noise-old"))
        new.append(run(spec, tmp, "noise-new"))
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    slowed: dict[float, list[dict]] = {}
    for fraction in (float(f) for f in args.detect.split(",") if f):
        slow_file.write_text(f"{args.slow_mode} {fraction}")
        slowed[fraction] = [run(spec, tmp, "noise-new") for _ in range(args.detect_runs)]
    spread_table(old, new) if old else spread_table(new, new, "max CV")
    ratio_moves(new, args.pairs)
    for counter in ("time", "cpu"):
        what = "wall-time" if counter == "time" else "CPU-time (bench compare --counter cpu)"
        for drop in (float(t) for t in args.tolerances.split(",") if t):
            print(f"\n(b) {what} gate, speed_ratio_drop {drop:.1%}")
            gate_figures(new, slowed, Tolerances(counter=counter, speed_ratio_drop=drop),
                         args.pairs, f"{counter} {drop:.1%}")
    if args.instructions:
        ispec = {**spec, "counter": "instructions", "runs": 1, "max_point_s": 0.0,
                 "replicas": 1, "timeout": 3600}
        ispec["dataset"] = {**spec["dataset"], "n": args.instr_n, "n_queries": args.instr_queries}
        ispec["algorithms"] = [{**a, "query": {"nprobe": [4]}} if a["name"] == "faiss-ivf"
                               else a for a in spec["algorithms"]
                               if a.get("name") in ("faiss-flat", "faiss-ivf", SLOWABLE)]
        slow_file.write_text("work 0")
        unchanged = [run(ispec, tmp, "noise-instr") for _ in range(args.instr_runs)]
        islowed = {}
        for fraction in (float(f) for f in args.instr_detect.split(",") if f):
            slow_file.write_text(f"work {fraction}")
            islowed[fraction] = [run(ispec, tmp, "noise-instr")]
        print("\n(c) instruction gate, instructions_rise "
              f"{args.instr_tolerance:.0%}; instructions per query across unchanged runs:")
        for r in unchanged[0]["runs"]:
            values = [x["instructions_per_query"] for f in unchanged for x in f["runs"]
                      if match_key(x) == match_key(r) and x.get("instructions_per_query")]
            if values:
                print(f"  {run_name(r)[:58]:58s} {statistics.median(values):12,.0f} "
                      f"CV {cv(values):.2%}")
        gate_figures(unchanged, islowed, Tolerances(counter="instructions",
                                                    instructions_rise=args.instr_tolerance),
                     args.pairs, "instructions")
    (tmp / "noise.json").write_text(json.dumps({"old": old, "new": new, "slowed": slowed},
                                                default=str))
    print(f"\nraw results: {tmp}")


if __name__ == "__main__":
    main()
