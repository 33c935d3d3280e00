"""Pooled copy-detection figures: precision-recall over all predictions, µAP by family."""

from __future__ import annotations

from bench.process.copydetect import pooled_pr_figure, uap_by_family_figure
from bench.process.registry import FigureContext, Output, figure


@figure("Copy detection",
        "Pooled precision-recall (ISC 2021 style): every prediction of every query, queries "
        "without an original included, sorted by similarity with ties broken pessimistically; "
        "µAP in the legend, dots at recall for precision 0.9, one point per score threshold; "
        "second panel: normalised similarity.",
        order=60)
def pooled_precision_recall(ctx: FigureContext) -> list[Output]:
    return list(pooled_pr_figure(ctx.ok, ctx.raw, ctx.out_dir / "pooled_pr.png", ctx.colors,
                                 title=ctx.title, svg=ctx.svg))


@figure("Copy detection", "µAP of each attack family's queries (their predictions pooled).",
        order=61)
def uap_by_family(ctx: FigureContext) -> list[Output]:
    return list(uap_by_family_figure(ctx.ok, ctx.raw, ctx.out_dir / "uap_by_family.png",
                                     ctx.colors, title=ctx.title, svg=ctx.svg))
