"""The CI of each point and the unstable marker reach the frame, the table and the plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from bench.process.frame import ok_runs, runs_frame  # noqa: E402
from bench.process.plots import _uncertainty, plt  # noqa: E402
from bench.process.tables import best_qps, report_view  # noqa: E402


def _run(rid: str, nprobe: int, recall: float, qps: float, **timing) -> dict:
    return {"id": rid, "extractor": None, "algorithm": "faiss", "label": "ivf",
            "build_params": {"factory": "IVF"}, "query_params": {"nprobe": nprobe}, "k": 10,
            "mode": "batch", "status": "ok", "qps": qps, "recall": recall,
            "build_time_s": 1.0, **timing}


def test_ci_and_unstable_flow_to_frame_table_and_plot():
    data = {"runs": [
        _run("a", 1, 0.91, 1000.0, qps_ci=[950.0, 1040.0], stable=True),
        _run("b", 4, 0.96, 500.0, qps_ci=[400.0, 620.0], stable=False),
        _run("c", 8, 0.995, 200.0),  # an old record: no samples
    ]}
    df = ok_runs(runs_frame(data))
    row = df.set_index("id")
    assert (row.loc["a", "qps_low"], row.loc["a", "qps_high"]) == (950.0, 1040.0)
    assert row.loc["c", "qps_low"] != row.loc["c", "qps_low"]  # NaN
    table = best_qps(df, {r["id"]: r for r in data["runs"]})
    at95 = table[table["min_score"] == 0.95].iloc[0]
    assert at95["run_id"] == "b" and at95["stable"] is False and at95["qps_low"] == 400.0
    cells = report_view(table)[0]["rows"][0]["cells"]
    assert cells[0]["qps"] == "1,000" and cells[0]["qps_ci"] == "950-1,040"
    assert cells[1]["qps"].endswith("(unstable)")
    fig, ax = plt.subplots()
    assert _uncertainty(ax, df, "C0") is True  # one unstable point drawn with a ring
    assert len(ax.containers) == 1  # the error bars of the two sampled points
    plt.close(fig)
