"""Precision against recall, averaged over queries."""

from __future__ import annotations

from bench.process.prcurves import pr_curves
from bench.process.registry import FigureContext, Output, figure


@figure("Precision-recall",
        "Precision against recall, averaged over queries at every rank cut-off.", order=50)
def precision_recall(ctx: FigureContext) -> list[Output]:
    return list(pr_curves(ctx.ok, ctx.raw, ctx.out_dir / "pr_curves.png", ctx.colors,
                          title=ctx.title, svg=ctx.svg))
