"""Shared figure conventions: one colour per series, the recall axis, saving.

Every plot of one experiment takes its colours from ``series_colors`` over the
same sorted list of series, so "faiss-ivf" is the same colour in the Pareto plot,
the parameter sweeps, the bar charts and the PR curves.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedFormatter,
    FixedLocator,
    FuncFormatter,
    NullLocator,
)

#: recall 1.0 cannot sit on a logit axis; it is drawn at the upper clip
RECALL_CLIP = (0.01, 0.9999)
DPI = 130
#: readable recall ticks for the logit axis (its default labels read "1 - 10^-2")
LOGIT_TICKS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998,
               0.999, 0.9995, 0.9999)

plt.rcParams.update({
    "axes.titlesize": "medium", "axes.titleweight": "bold", "axes.labelsize": "medium",
    "legend.fontsize": "small", "figure.dpi": DPI, "svg.fonttype": "none",
})

Color = tuple[float, float, float, float]


def series_colors(series: list[str]) -> dict[str, Color]:
    names = sorted(set(series))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def recall_axis(ax: plt.Axes, values: pd.Series, label: str, *, axis: str = "x") -> None:
    """Logit scale when the data sit in the high-recall region, linear otherwise.

    A logit axis spreads 0.9, 0.99 and 0.999 evenly, as ann-benchmarks does; on a
    linear axis every good configuration is crushed into the last few pixels.
    Data reaching below 0.5 would squash the top instead, so they get a linear axis.
    """
    finite = values.dropna()
    lo = float(np.clip(finite.min(), *RECALL_CLIP)) if len(finite) else 0.5
    set_scale = ax.set_xscale if axis == "x" else ax.set_yscale
    set_lim = ax.set_xlim if axis == "x" else ax.set_ylim
    set_label = ax.set_xlabel if axis == "x" else ax.set_ylabel
    if lo >= 0.5:
        set_scale("logit", nonpositive="clip")
        low = max(RECALL_CLIP[0], min(lo, 0.9) * 0.98)
        set_lim(low, RECALL_CLIP[1] * 1.00005)
        ticks = [t for t in LOGIT_TICKS if low <= t <= RECALL_CLIP[1]]
        target = ax.xaxis if axis == "x" else ax.yaxis
        target.set_major_locator(FixedLocator(ticks))
        target.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
        target.set_minor_locator(NullLocator())
        set_label(f"{label}  (logit scale; 1.0 drawn at 0.9999)")
    else:
        # start a little below the worst point, at a tenth: empty space says nothing
        set_lim(max(0.0, np.floor((lo - 0.03) * 10) / 10) - 0.01, 1.01)
        set_label(label)


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def plain_log(axis: Axis) -> None:
    """Log-axis labels as plain numbers (20, 5,000) instead of 2x10^1; on a short range the
    2 and 5 minor ticks are labelled too, so a one-decade axis is not left with one label."""

    def minor(value: float, _pos: int) -> str:
        lo, hi = sorted(axis.get_view_interval())
        decades = np.log10(hi / lo) if lo > 0 else 99.0
        mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
        wanted = {2.0, 3.0, 5.0} if decades < 1.2 else {2.0, 5.0} if decades < 2.2 else set()
        return _number(value) if mantissa in wanted else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: _number(value)))
    axis.set_minor_formatter(FuncFormatter(minor))


def clip_recall(values: pd.Series) -> pd.Series:
    return values.clip(*RECALL_CLIP)


def legend_outside(ax: plt.Axes, title: str | None = None) -> None:
    """Legend to the right of the axes, never on top of data points."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, title=title,
                  borderaxespad=0.0)


def save(fig: plt.Figure, path: Path, *, svg: bool) -> list[Path]:
    """PNG always, SVG on request; bbox tight so outside legends are not cut off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    written = [path]
    if svg:
        fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
        written.append(path.with_suffix(".svg"))
    plt.close(fig)
    return written


def slug(text: str) -> str:
    """A file-name-safe form of a parameter or series name."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
    return out.strip("_")[:60] or "x"
