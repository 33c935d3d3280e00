"""Sweep figures: database size (with growth exponents), metric facets, thread scaling."""

from __future__ import annotations

from bench.process import scale
from bench.process.registry import FigureContext, Output, figure

SIZE_CAPTION = ("Queries per second, build time, index memory and recall against database "
                "size (log-log), one line per configuration; the sizes are nested prefixes of "
                "one seeded database order, each scored against its own exact ground truth.")
EXPONENT_CAPTION = ("Growth exponent b of each configuration, fitted as y = c * n^b by least "
                    "squares on log-log axes (tables/growth_exponents.csv adds r^2): search "
                    "time b = 1 is a linear scan, b < 1 a sublinear index; recall b near 0 "
                    "holds as the database grows.")


@figure("Database size", SIZE_CAPTION, order=40)
def size_curves(ctx: FigureContext) -> list[Output]:
    df = scale.size_frame(ctx.ok)
    if df.empty:
        return []
    out: list[Output] = []
    metrics = sorted(df["metric"].dropna().unique())
    for (k, metric), group in df.groupby(["k", "metric"], sort=True):
        k = int(k)
        shown = metric if len(metrics) > 1 else None
        title = f"{ctx.title}: k={k}" + (f", metric {metric}" if shown else "")
        out += scale.size_curves(group, ctx.out_dir / f"{scale.stem('size', k, shown)}.png",
                                 title=title, svg=ctx.svg)
    table = scale.growth_exponents(df)
    scale.write_exponents(table, ctx.out_dir)
    paths = scale.exponent_figure(table, ctx.out_dir / "growth_exponents.png",
                                  title=ctx.title, svg=ctx.svg)
    return out + [(p, EXPONENT_CAPTION) for p in paths]


@figure("Metrics", "Recall against queries per second, one panel per metric (the same "
        "colour is the same series in every panel).", order=41)
def metric_facets(ctx: FigureContext) -> list[Output]:
    if "metric" not in ctx.ok or ctx.ok["metric"].nunique(dropna=True) < 2:
        return []
    out: list[Output] = []
    for k, group in ctx.ok.groupby("k", sort=True):
        out += scale.metric_facets(group, int(k), ctx.out_dir / f"metrics_k{int(k)}.png",
                                   ctx.colors, title=ctx.title, label=ctx.label, svg=ctx.svg)
    return out


@figure("Thread scaling", "Queries per second against query threads, one line per "
        "configuration (log-log: a line parallel to the diagonal scales linearly).", order=42)
def thread_scaling(ctx: FigureContext) -> list[Output]:
    if "threads" not in ctx.ok or ctx.ok["threads"].nunique(dropna=True) < 2:
        return []
    out: list[Output] = []
    for k, group in ctx.ok.groupby("k", sort=True):
        out += scale.thread_scaling(group, int(k), ctx.out_dir / f"threads_k{int(k)}.png",
                                    title=ctx.title, svg=ctx.svg)
    return out
