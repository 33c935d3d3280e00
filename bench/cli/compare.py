"""`bench compare` and `bench baseline save`: the regression gate on the command line.

Exit codes: 0 when every tolerance holds, 1 when one is broken (or a baseline run
is missing), 2 for bad input (printed as one line by the `bench` group).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from bench.gate.compare import Tolerances

_DEFAULT = Tolerances()
# CI logs are not terminals: rich would wrap the table at 80 columns
_out = Console() if sys.stdout.isatty() else Console(width=220)
_err = Console(stderr=True)


def _write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    _err.print(f"wrote {target}", highlight=False)


@click.command()
@click.argument("baseline")
@click.argument("current")
@click.option("--recall-drop", type=float, default=None,
              help=f"Largest allowed absolute recall drop [default {_DEFAULT.recall_drop:g}].")
@click.option("--speed-drop", "speed_ratio_drop", type=float, default=None,
              help="Largest allowed relative drop of QPS / reference QPS "
                   f"[default {_DEFAULT.speed_ratio_drop:g}].")
@click.option("--build-rise", "build_ratio_rise", type=float, default=None,
              help="Largest allowed relative rise of build time / reference search time "
                   f"[default {_DEFAULT.build_ratio_rise:g}].")
@click.option("--memory-rise", type=float, default=None,
              help="Largest allowed relative index memory rise "
                   f"[default {_DEFAULT.memory_rise:g}].")
@click.option("--reference", default=None,
              help="Label or algorithm of the reference run [default: faiss Flat]; "
                   "'none' compares raw QPS and seconds.")
@click.option("--counter", type=click.Choice(["time", "cpu", "instructions"]), default=None,
              help="Judge speed on wall-time samples, on CPU-time samples (the process's "
                   "own CPU time: steadier on a machine shared with other jobs), or on "
                   "Valgrind instruction counts (needs an experiment with counter: "
                   "instructions) [default time].")
@click.option("--instructions-rise", type=float, default=None,
              help="Largest allowed relative rise of instructions per query "
                   f"[default {_DEFAULT.instructions_rise:g}].")
@click.option("--markdown", "markdown_path", default=None, metavar="FILE",
              help="Also write a Markdown report (for a pull-request comment); '-' prints "
                   "it instead of the table.")
@click.option("--junit", "junit_path", default=None, metavar="FILE",
              help="Also write JUnit XML, one test case per run.")
@click.option("--no-fail", is_flag=True, help="Report only: exit 0 even on a regression.")
@click.option("--allow-cpu-mismatch", is_flag=True,
              help="Compare although the runs were timed on different CPU models (speed "
                   "ratios are then approximate).")
@click.pass_context
def compare(ctx: click.Context, baseline: str, current: str, recall_drop: float | None,
            speed_ratio_drop: float | None, build_ratio_rise: float | None,
            memory_rise: float | None, reference: str | None, counter: str | None,
            instructions_rise: float | None, markdown_path: str | None,
            junit_path: str | None, no_fail: bool, allow_cpu_mismatch: bool) -> None:
    """Compare CURRENT with BASELINE and fail on a regression.

    Each is a results.json, its folder, an experiment name, or a baseline file
    from `bench baseline save`. Runs are matched by algorithm, parameters, k and
    mode. Speed and build time are compared as ratios to a reference run in the
    same file, so a uniformly slower CI machine does not fail the gate.
    Tolerances come from the experiment's `compare:` section, then these options.
    """
    from bench.core.errors import BenchError
    from bench.gate.baseline import load_comparable
    from bench.gate.compare import compare_results, cpu_mismatch, resolve_tolerances
    from bench.gate.formats import print_table, to_junit, to_markdown

    base = load_comparable(baseline)
    cur = load_comparable(current)
    mismatch = None if allow_cpu_mismatch else cpu_mismatch(base, cur)
    if mismatch:
        raise BenchError(f"{mismatch}: speed is not comparable across CPU models; pass "
                         "--allow-cpu-mismatch to compare anyway")
    tolerances = resolve_tolerances(base, cur, {
        "recall_drop": recall_drop, "speed_ratio_drop": speed_ratio_drop,
        "build_ratio_rise": build_ratio_rise, "memory_rise": memory_rise,
        "reference": reference, "counter": counter, "instructions_rise": instructions_rise,
    })
    result = compare_results(base, cur, tolerances)
    result.baseline_name, result.current_name = baseline, current
    if markdown_path == "-":
        sys.stdout.write(to_markdown(result))
    else:
        print_table(result, _out)
        if markdown_path:
            _write(markdown_path, to_markdown(result))
    if junit_path:
        _write(junit_path, to_junit(result))
    if result.failed and not no_fail:
        ctx.exit(1)


@click.group()
def baseline() -> None:
    """Baselines for `bench compare`: compact, reviewable JSON files to commit."""


@baseline.command(name="save")
@click.argument("experiment")
@click.argument("path", type=click.Path(dir_okay=False))
def baseline_save(experiment: str, path: str) -> None:
    """Save EXPERIMENT's results (a name, results.json or folder) as a baseline at PATH."""
    from bench.gate.baseline import save_baseline

    saved = save_baseline(experiment, path)
    failed = [r for r in saved["runs"] if r.get("status") != "ok"]
    if failed:
        _err.print(f"[yellow]warning:[/] {len(failed)} runs in the baseline failed; they are "
                   "not checked by `bench compare`", highlight=False)
    _err.print(f"wrote {path} ({len(saved['runs'])} runs)", highlight=False)

