"""Recall against fine-tuning epoch, for experiments that sweep an extractor's checkpoints
(``weights: {finetune: RUN, epochs: [...]}``): the study's question, does fine-tuning help
or hurt copy detection, in one line per search configuration."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.config.checkpoints import sweep_series
from bench.process.registry import FigureContext, Output, figure
from bench.process.style import legend_outside, plt, save


def epoch_lines(ok: pd.DataFrame) -> pd.DataFrame:
    """Runs with an epoch, with ``line`` = swept extractor + configuration (no epoch)."""
    if "epoch" not in ok or ok["epoch"].notna().sum() == 0:
        return ok.iloc[0:0]
    df = ok.dropna(subset=["epoch"]).copy()
    df["epoch"] = pd.to_numeric(df["epoch"]).astype(int)
    df["swept"] = df["extractor"].map(sweep_series)
    df["line"] = df["swept"] + " / " + df["config"].str.split(" / ", n=1).str[-1]
    return df


def _epoch_axes(ax: Any, group: pd.DataFrame, ylabel: str, title: str) -> None:
    """The axes every against-epoch figure shares: the epochs as ticks, a 0-1 score."""
    epochs = sorted(group["epoch"].unique())
    if len(epochs) <= 20:
        ax.set_xticks(epochs)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.25)
    ax.set_title(title)
    legend_outside(ax, "configuration")


@figure("Fine-tuning epochs",
        "Score of each search configuration on the features of every fine-tuning checkpoint "
        "(epoch 0: the weights before fine-tuning).", order=15)
def score_vs_epoch(ctx: FigureContext) -> list[Output]:
    df = epoch_lines(ctx.ok)
    out: list[Output] = []
    if df.empty or df["epoch"].nunique() < 2:
        return out
    for k, group in df.groupby("k", sort=True):
        k = int(k)
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for line, runs in group.groupby("line", sort=True):
            runs = runs.sort_values("epoch")
            ax.plot(runs["epoch"], runs["score"], marker="o", ms=4, label=line)
        _epoch_axes(ax, group, f"{ctx.label}@{k}",
                    f"{ctx.title}: {ctx.label}@{k} against fine-tuning epoch")
        out += save(fig, ctx.out_dir / f"recall_vs_epoch_k{k}.png", svg=ctx.svg)
    return out


@figure("Fine-tuning epochs",
        "Pooled µAP (the copy-detection protocol: every prediction of every query pooled, "
        "queries without an original included) of each configuration against fine-tuning "
        "epoch; dashed: with score normalisation.", order=16)
def uap_vs_epoch(ctx: FigureContext) -> list[Output]:
    df = epoch_lines(ctx.ok)
    if df.empty or "uap" not in df or df["uap"].notna().sum() == 0 or df["epoch"].nunique() < 2:
        return []
    out: list[Output] = []
    for k, group in df.dropna(subset=["uap"]).groupby("k", sort=True):
        k = int(k)
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for line, runs in group.groupby("line", sort=True):
            runs = runs.sort_values("epoch")
            (drawn,) = ax.plot(runs["epoch"], runs["uap"], marker="o", ms=4, label=line)
            if "uap_norm" in runs and runs["uap_norm"].notna().any():
                ax.plot(runs["epoch"], runs["uap_norm"], ls="--", marker="o", ms=3,
                        color=drawn.get_color(), label=f"{line} (normalised)")
        _epoch_axes(ax, group, f"µAP, {k} prediction{'s' if k > 1 else ''} per query",
                    f"{ctx.title}: pooled µAP against fine-tuning epoch")
        out += save(fig, ctx.out_dir / f"uap_vs_epoch_k{k}.png", svg=ctx.svg)
    return out
