"""Run-to-run spread of the regression gate's figures on this machine.

Runs the ``ci`` experiment N times (forced, into a temporary results folder so
results/ci is left alone; the feature and ground-truth caches are shared) and
prints, for every run configuration, the spread of its speed ratio (QPS / QPS of
the reference run in the same repetition) next to the spread of its raw QPS.
The raw spread is what a gate on raw numbers would have to tolerate; the ratio
spread is what `bench compare` has to tolerate, and it is the evidence for the
default ``speed_ratio_drop``. Finally every repetition is gated against every
other with the default tolerances, which counts false alarms directly.

    python benchmarks/ci_spread.py            # 5 repetitions of `ci`
    python benchmarks/ci_spread.py --repeat 3  # what `bench run ci --repeat 3` would see
    python benchmarks/ci_spread.py -n 3 --experiment quickstart
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gate.compare import (  # noqa: E402
    Tolerances,
    compare_results,
    reference_runs,
    run_name,
)
from bench.results.record import record_key as match_key  # noqa: E402


def _rel_spread(values: list[float]) -> float:
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def _worst_drop(values: list[float]) -> float:
    """The largest drop a gate comparing any two repetitions would see: 1 - min/max."""
    return 1 - min(values) / max(values) if max(values) else 0.0


def run_all(experiment: str, n: int, repeat: int = 1) -> list[dict[str, Any]]:
    """``n`` forced runs; with ``repeat`` > 1 each is `bench run --repeat` (medians)."""
    from rich.console import Console

    from bench.run.repeat import run_repeated
    from bench.run.runner import RunOptions

    quiet = Console(stderr=True, quiet=True)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        results = run_repeated(experiment, repeat, RunOptions(force=True, progress=False), quiet)
        data = dict(results.data)
        data["runs"] = [dict(r) for r in results.runs]
        load = os.getloadavg()[0]
        print(f"repetition {i + 1}/{n}: {time.perf_counter() - t0:.1f} s, "
              f"load average {load:.2f}", flush=True)
        out.append(data)
    return out


def report(reps: list[dict[str, Any]]) -> None:
    tol = Tolerances()
    refs = [reference_runs(d, tol.reference, f"repetition {i}") for i, d in enumerate(reps)]
    by_key: dict[Any, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for data, ref in zip(reps, refs, strict=True):
        for run in data["runs"]:
            group_ref = ref.get((run.get("extractor"), run["k"], run.get("mode", "batch")))
            if run.get("status") == "ok" and group_ref is not None:
                by_key.setdefault(match_key(run), []).append((run, group_ref))
    print(f"\n{'run':34s} {'speed ratio':>11s} {'ratio spread':>12s} {'worst drop':>10s} "
          f"{'raw QPS spread':>14s} {'build worst rise':>16s}")
    worst, worst_build = [], []
    for pairs in by_key.values():
        run0, ref0 = pairs[0]
        is_ref = match_key(run0) == match_key(ref0)
        ratios = [r["qps"] / ref["qps"] for r, ref in pairs]
        raw = [r["qps"] for r, _ in pairs]
        builds = [r["build_time_s"] / ref["search_time_s"] for r, ref in pairs]
        build_rise = max(builds) / min(builds) - 1 if min(builds) > 0 else 0.0
        if not is_ref:
            worst.append(_worst_drop(ratios))
            worst_build.append(build_rise)
        print(f"{run_name(run0)[:34]:34s} {statistics.median(ratios):11.4g} "
              f"{'(reference)' if is_ref else f'{_rel_spread(ratios):.1%}':>12s} "
              f"{'' if is_ref else f'{_worst_drop(ratios):.1%}':>10s} "
              f"{_rel_spread(raw):14.1%} {'' if is_ref else f'{build_rise:.1%}':>16s}")
    if worst:
        print(f"\nworst pairwise speed-ratio drop: median over runs "
              f"{statistics.median(worst):.1%}, max {max(worst):.1%} "
              f"(default tolerance {tol.speed_ratio_drop:.0%})")
        print(f"worst pairwise build-ratio rise: median over runs "
              f"{statistics.median(worst_build):.1%}, max {max(worst_build):.1%} "
              f"(default tolerance {tol.build_ratio_rise:.0%} and more than "
              f"{tol.min_build_s:g} s)")
    alarms = total = 0
    for a, b in itertools.permutations(range(len(reps)), 2):
        c = compare_results(reps[a], reps[b], tol)
        total += 1
        if c.failed:
            alarms += 1
            metrics = sorted({ch.metric for r in c.rows if r.failed for ch in r.checks
                              if not ch.ok})
            print(f"false alarm, baseline {a + 1} vs current {b + 1}: "
                  f"{sum(r.failed for r in c.rows)} runs ({', '.join(metrics)})")
    print(f"gate with default tolerances: {alarms} false alarms in {total} ordered pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--experiment", default="ci")
    parser.add_argument("--repeat", type=int, default=1,
                        help="each repetition is `bench run --repeat R` (medians of R)")
    parser.add_argument("--save", metavar="DIR", help="also write each repetition's results "
                        "as DIR/rep_<i>.json (to re-analyse with --load)")
    parser.add_argument("--load", metavar="DIR", help="analyse saved repetitions, run nothing")
    parser.add_argument("--keep-results", action="store_true",
                        help="write into ./results instead of a temporary folder")
    args = parser.parse_args()
    print(f"{args.experiment}: {args.n} repetitions x --repeat {args.repeat}; cpu_count "
          f"{os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}")
    if args.load:
        files = sorted(Path(args.load).glob("rep_*.json"))
        report([json.loads(f.read_text()) for f in files])
        return
    if args.keep_results:
        reps = run_all(args.experiment, args.n, args.repeat)
    else:
        with tempfile.TemporaryDirectory(prefix="ci_spread_") as tmp:
            os.environ["BENCH_RESULTS"] = tmp
            reps = run_all(args.experiment, args.n, args.repeat)
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(reps):
            (Path(args.save) / f"rep_{i + 1}.json").write_text(json.dumps(data, default=str))
    report(reps)


if __name__ == "__main__":
    main()
