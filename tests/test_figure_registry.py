"""Adding a figure is one decorated function: the registry draws it and the report shows it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from test_process import _plots, make_ann_results  # noqa: E402

from bench.process import process_results  # noqa: E402
from bench.process.registry import FigureContext, figure, registered, unregister  # noqa: E402


def test_a_registered_figure_is_drawn_and_captioned_in_its_section():
    make_ann_results("reg")
    name = "tests.queries_per_build"

    @figure("Extra views", "Queries per second of every run, in file order.", order=5,
            name=name)
    def queries_per_build(ctx: FigureContext) -> list:
        fig, ax = plt.subplots()
        ax.plot(range(len(ctx.ok)), ctx.ok["qps"])
        path = ctx.out_dir / "qps_per_run.png"
        fig.savefig(path)
        plt.close(fig)
        return [path]

    try:
        assert name in [f.name for f in registered()]
        written = process_results("reg")
    finally:
        unregister(name)
    out = _plots("reg")
    assert out / "qps_per_run.png" in written
    html = (out / "report.html").read_text()
    assert "Extra views" in html and "Queries per second of every run, in file order." in html
    assert html.index("Extra views") < html.index("Recall vs throughput")  # order=5 first
    assert name not in [f.name for f in registered()]


def test_built_in_figures_are_discovered_from_their_modules():
    sections = {f.section for f in registered()}
    assert {"Recall vs throughput", "Query parameter sweeps", "Build cost", "Attacks",
            "Precision-recall", "Copy detection"} <= sections
