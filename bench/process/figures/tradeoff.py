"""Recall against throughput: the Pareto front per k and the best recall at each k."""

from __future__ import annotations

from pathlib import Path

from bench.process.plots import recall_qps, recall_vs_k
from bench.process.registry import FigureContext, Output, figure

RECALL_K = "Best recall any configuration of a series reached at each k."


@figure("Recall vs throughput",
        "Each line is a series' Pareto front: the runs no other run of the series beats on both "
        "recall and queries per second. Up and to the right is better; dotted lines mark the "
        "0.90 / 0.95 / 0.99 levels of the table above.", order=10)
def recall_throughput(ctx: FigureContext) -> list[Output]:
    out: list[Output] = []
    for k, group in ctx.ok.groupby("k", sort=True):
        k = int(k)
        out += recall_qps(group, k, ctx.out_dir / f"recall_qps_k{k}.png", ctx.colors,
                          title=ctx.title, label=ctx.label, all_points=ctx.all_points,
                          svg=ctx.svg)
    paths: list[Path] = recall_vs_k(ctx.ok, ctx.out_dir / "recall_k.png", ctx.colors,
                                    title=ctx.title, label=ctx.label, svg=ctx.svg)
    return out + [(p, RECALL_K) for p in paths]
