"""One query parameter against recall and throughput, one line per build."""

from __future__ import annotations

from bench.process.registry import FigureContext, Output, figure
from bench.process.sweeps import sweep_plots


@figure("Query parameter sweeps",
        "Recall (top) and queries per second (bottom) as one query parameter grows, one line "
        "per build.", order=20)
def parameter_sweeps(ctx: FigureContext) -> list[Output]:
    return list(sweep_plots(ctx.ok, ctx.out_dir, ctx.colors, title=ctx.title, label=ctx.label,
                            svg=ctx.svg))
