"""Clustering as a registered experiment kind (entry point ``bench.kinds: clustering``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.kinds import ExperimentKind


class ClusteringKind(ExperimentKind):
    def run(self, loaded, sets, dataset_description, options, console):  # type: ignore[no-untyped-def]
        from bench.clustering.run import run_clustering

        return run_clustering(loaded, sets, dataset_description, options, console)

    def summary_table(self, runs: list[dict[str, Any]]) -> Any:
        from bench.clustering.summary import clustering_table

        return clustering_table(runs)

    def figures(self, results: dict[str, Any], out_dir: Path, svg: bool) -> list[Path]:
        from bench.clustering.plots import clustering_plots

        return clustering_plots(results, out_dir, svg)
