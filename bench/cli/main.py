"""The `bench` command line. Thin: parse, call, print.

Errors a user can fix (``BenchError``) print as one line and exit with code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import inspect
import signal
import sys
import threading
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bench.core.errors import BenchError
from bench.core.kinds import kind_of
from bench.results.record import index_mb, param_text, score

console = Console(stderr=True)
out = Console()


def _error_line(message: str) -> None:
    """User text (paths, keys, values) may hold ``[/]`` or ``:name:``: printed as
    plain text so it can neither crash rich's markup parser nor turn into an emoji."""
    console.print("error:", style="bold red", end=" ")
    console.print(message, markup=False, emoji=False, highlight=False, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT would be: the same unwinding stops the workers (their
    supervisors' ``finally`` kills them) and keeps every finished run."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


class BenchGroup(click.Group):
    """Turns BenchError (and a few environment errors) into one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            if debug:
                raise
            _error_line(str(exc))
            sys.exit(2)
        except EOFError as exc:  # click would print a bare "Aborted!" and exit 1
            if debug:
                raise
            _error_line(f"a file ended early ({exc or 'no data left'}); rerun with --debug "
                        "for the traceback naming it")
            sys.exit(2)
        except KeyboardInterrupt as exc:
            what, code = ("terminated", 143) if isinstance(exc, Terminated) else (
                "interrupted", 130)
            console.print(f"[yellow]{what}[/]: finished runs are saved; run again to resume")
            sys.exit(code)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="featbench")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """featbench: nearest-neighbour search benchmarks on image and text features.

    \b
    bench run quickstart        run a built-in experiment (or a YAML path)
    bench process quickstart    plots and a report under plots/quickstart/
    bench list experiments      built-in experiments, algorithms, datasets
    """
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("experiment")
@click.option("--force", is_flag=True,
              help="Re-measure every run; each record is replaced as its new one arrives.")
@click.option("--retry-failed", is_flag=True,
              help="Redo only the runs recorded as failed, crashed, timeout or oom.")
@click.option("--executor", type=click.Choice(["local", "inline", "ray"]), default="local",
              show_default=True,
              help="local: one isolated worker process per build; inline: in this process "
                   "(debugging, no time or memory limit); ray: a Ray cluster.")
@click.option("--workers", type=int, default=None, help="Processes for feature extraction.")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Build points at once with --executor local; only for experiments with "
                   "`timing: false` (two timed runs never share the cores).")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the whole experiment N times and record each figure's median and "
                   "spread (steadier CI baselines on noisy machines).")
@click.option("--address", envvar="BENCH_RAY_ADDRESS", default=None,
              help="Ray cluster address for --executor ray (ray://host:10001, host:6379); "
                   "default: $BENCH_RAY_ADDRESS, else a local Ray instance.")
@click.pass_context
def run(ctx: click.Context, experiment: str, force: bool, retry_failed: bool, executor: str,
        workers: int | None,
        parallel: int, no_progress: bool, repeat: int, address: str | None) -> None:
    """Run EXPERIMENT (a built-in name or a YAML file) and write results/<name>/results.json.

    Features and ground truth are cached; runs already recorded are skipped, so an
    interrupted run resumes where it stopped.
    """
    from bench.run.runner import RunOptions, run_experiment

    options = RunOptions(force=force, executor=executor, progress=not no_progress,
                         workers=workers, parallel=parallel, retry_failed=retry_failed)
    if executor == "ray":
        from bench.core.cluster import configure

        configure(address)
    elif address:
        raise BenchError("--address only applies to --executor ray")
    if repeat > 1:
        from bench.run.repeat import run_repeated

        results = run_repeated(experiment, repeat, options, console)
    else:
        results = run_experiment(experiment, options, console)
    kind = kind_of(results.data)
    if kind is not None:
        out.print(kind.summary_table(results.runs))
    else:
        print_summary(results.runs)
    failed = [r for r in results.runs if r["status"] != "ok"]
    console.print(
        f"[bold green]wrote[/] {results.path} ({len(results.runs)} runs, {len(failed)} failed)"
    )


def print_summary(runs: list[dict[str, Any]]) -> None:
    table = Table(title="runs", show_lines=False)
    # a metric / size / thread sweep: one column says which point of it a row is
    axes = [a for a in ("metric", "n_database", "threads") if len({r.get(a) for r in runs}) > 1]
    for col in ("extractor", *(["sweep"] if axes else []), "algorithm", "build", "query", "k",
                "status", "recall", "QPS", "build s", "index MB"):
        table.add_column(col, justify="right" if col in ("k", "recall", "QPS", "build s",
                                                         "index MB") else "left")
    shown = {"metric": str, "n_database": lambda v: f"n={v:,}", "threads": lambda v: f"{v} thr"}
    for r in runs:
        ok = r["status"] == "ok"
        recall = score(r)
        size = index_mb(r)
        sweep = [" ".join(shown[a](r[a]) for a in axes if r.get(a) is not None)] if axes else []
        table.add_row(
            r.get("extractor") or "", *sweep, r["label"], param_text(r["build_params"]),
            param_text(r["query_params"]), str(r["k"]),
            r["status"] if ok else f"[red]{r['status']}[/]",
            f"{recall:.4f}" if ok and recall is not None else "",
            f"{r['qps']:,.0f}" if ok and r.get("qps") is not None else "",
            f"{r['build_time_s']:.2f}" if r.get("build_time_s") is not None else "",
            f"{size:.1f}" if size is not None else "",
        )
    out.print(table)


@cli.command()
@click.argument("experiments", nargs=-1, required=True)
@click.option("--overlay", "overlay_name", default=None, metavar="NAME",
              help="Draw every EXPERIMENT on one recall-QPS chart and table under "
                   "plots/NAME/.")
@click.option("--mixed-datasets", is_flag=True,
              help="With --overlay: allow experiments run on different data.")
@click.option("--svg", is_flag=True, help="Also write SVG versions of the plots.")
@click.option("--all-points", is_flag=True, help="Show every run, not only the Pareto fronts.")
@click.option("--max-galleries", type=click.IntRange(min=0), default=60, show_default=True,
              help="Galleries per feature set (0: none).")
@click.option("--gallery-select", type=click.Choice(["auto", "failures", "sample", "per-attack"]),
              default="auto", show_default=True,
              help="Queries drawn: rank-1 failures, a seeded sample, or a seeded pick per attack "
                   "(auto: per-attack when queries carry attacks, else sample).")
@click.option("--seed", type=int, default=None,
              help="Gallery sampling seed (default: the experiment's).")
@click.option("--gallery-run", default=None,
              help="Run drawn in the galleries: run id prefix, label or configuration "
                   "(default: the best run at the largest k).")
@click.option("--self-contained", is_flag=True, help="Embed the images in report.html.")
def process(experiments: tuple[str, ...], overlay_name: str | None, mixed_datasets: bool,
            svg: bool, all_points: bool, max_galleries: int,
            gallery_select: str, seed: int | None, gallery_run: str | None,
            self_contained: bool) -> None:
    """Plots, tables, galleries and report.html for EXPERIMENT under plots/<name>/
    (several EXPERIMENTS with --overlay NAME: one chart and one table of them all)."""
    from bench.process import process_results

    if overlay_name is not None:
        from bench.process.overlay import overlay

        for path in overlay(list(experiments), overlay_name, mixed_datasets=mixed_datasets,
                            svg=svg):
            out.print(str(path), soft_wrap=True)
        return
    if len(experiments) > 1:
        raise BenchError(f"{len(experiments)} experiments given: process one at a time, or "
                         "draw them together with --overlay NAME")
    if mixed_datasets:
        raise BenchError("--mixed-datasets applies to --overlay only")
    experiment = experiments[0]
    written = process_results(experiment, svg=svg, all_points=all_points,
                              max_galleries=max_galleries, gallery_select=gallery_select,
                              seed=seed, gallery_run=gallery_run,
                              self_contained=self_contained, console=console)
    galleries = [p for p in written if "galleries" in p.parts]
    for path in written:
        if "galleries" not in path.parts:
            out.print(str(path), soft_wrap=True)
    if galleries:
        out.print(f"{len(galleries)} galleries under {galleries[0].parents[2]}", soft_wrap=True)


@cli.command(name="list")
@click.argument("what", type=click.Choice(["algorithms", "datasets", "experiments",
                                           "extractors"]), default="experiments")
def list_cmd(what: str) -> None:
    """List built-in experiments, algorithms (with parameters), datasets or extractors."""
    if what == "experiments":
        from bench.config.experiment import builtin_experiments

        for name, path in sorted(builtin_experiments().items()):
            out.print(f"{name:24s} {path}")
        return
    if what == "algorithms":
        from bench.algorithms import registry

        table = Table(title="algorithms")
        for col in ("name", "metrics", "build parameters", "query parameters"):
            table.add_column(col)
        for name, cls in registry.items():
            params = [
                f"{p.name}={p.default!r}" if p.default is not inspect.Parameter.empty else p.name
                for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY
            ]
            table.add_row(name, ", ".join(cls.metrics), ", ".join(params),
                          ", ".join(cls.query_params_doc))
        out.print(table)
        return
    from bench.datasets import registry as datasets
    from bench.extractors import registry as extractors

    reg: Any = datasets if what == "datasets" else extractors
    for name, cls in reg.items():
        fields = ", ".join(cls.Options.model_fields)
        doc = (inspect.getdoc(cls) or "").splitlines()[0] if inspect.getdoc(cls) else ""
        out.print(f"[bold]{name}[/]  {doc}\n    options: {fields or 'none'}")


@cli.group()
def datasets() -> None:
    """Get and prepare datasets: download, info, list, prepare."""


def _add_subcommands() -> None:
    """Commands that live in their own modules, grouped here so `bench --help` shows all."""
    from bench.cli.compare import baseline, compare
    from bench.cli.download import add_commands
    from bench.cli.finetune import finetune
    from bench.cli.images import add_commands as add_image_commands
    from bench.cli.neural import convert

    add_commands(datasets, cli)
    add_image_commands(datasets, cli)
    for command in (compare, baseline, convert, finetune):
        cli.add_command(command)


_add_subcommands()


def main() -> None:
    cli(prog_name="bench")


if __name__ == "__main__":
    main()
