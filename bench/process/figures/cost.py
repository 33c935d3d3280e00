"""What a build costs: time and index memory, per build and against recall."""

from __future__ import annotations

from bench.process.plots import cost_vs_recall
from bench.process.registry import FigureContext, Output, figure
from bench.process.sweeps import build_cost


@figure("Build cost",
        "Build time and index memory (USS growth of the worker process, else the backend's own "
        "estimate) of every build.", order=30)
def build_cost_bars(ctx: FigureContext) -> list[Output]:
    return list(build_cost(ctx.ok, ctx.out_dir / "build_cost.png", ctx.colors, title=ctx.title,
                           svg=ctx.svg))


@figure("Build cost", order=31)
def cost_against_recall(ctx: FigureContext) -> list[Output]:
    out: list[Output] = []
    for k, group in ctx.ok.groupby("k", sort=True):
        k = int(k)
        for column, ylabel, what, stem in (
                ("build_time_s", "build time (s, log scale)", "build time", "build_time"),
                ("index_mb", "index memory (MB, log scale)", "index memory", "index_memory")):
            paths = cost_vs_recall(group, k, column, ylabel, what,
                                   ctx.out_dir / f"{stem}_k{k}.png", ctx.colors,
                                   title=ctx.title, label=ctx.label, svg=ctx.svg)
            out += [(p, f"{what.capitalize()} against the best recall the build reached with "
                        "any query setting.") for p in paths]
    return out
