"""Hit rate per attack and per attack family (copy-detection experiments)."""

from __future__ import annotations

from bench.process.identity import identity_outputs
from bench.process.registry import FigureContext, Output, figure

FAMILY = "Hit-rate recall per attack family for the best query setting of each build."


@figure("Attacks",
        "Hit-rate recall per attack type (columns, grouped by family) and configuration (rows); "
        "cells give the value in %.", order=40)
def attacks(ctx: FigureContext) -> list[Output]:
    paths = identity_outputs(ctx.ok, ctx.raw, ctx.query_items, ctx.out_dir, ctx.colors,
                             title=ctx.title, svg=ctx.svg, families=ctx.attack_families)
    return [(p, FAMILY) if p.stem.startswith("family_bars") else p for p in paths]
