"""Experiment kinds beside the built-in search kind, found by name.

A kind runs once the features are loaded (the runner hands it the feature sets
and stops there), and says how its results are shown: the CLI's summary table
and the figures of ``bench process``. Kinds register through the ``bench.kinds``
entry point group, so a higher layer (bench.clustering) plugs in without the
runner, the CLI or the report branching on its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bench.core.registry import Registry

if TYPE_CHECKING:
    from rich.console import Console

    from bench.config.experiment import LoadedExperiment
    from bench.features.prepare import FeatureSet
    from bench.results import ResultsFile

SEARCH = "search"


class ExperimentKind:
    """The contract of a kind: run it, summarise it, draw it."""

    registered_name: ClassVar[str] = ""

    def run(self, loaded: LoadedExperiment, sets: list[FeatureSet],
            dataset_description: dict[str, Any], options: Any,
            console: Console) -> ResultsFile:
        raise NotImplementedError

    def summary_table(self, runs: list[dict[str, Any]]) -> Any:
        """A rich renderable for `bench run`'s closing table."""
        raise NotImplementedError

    def figures(self, results: dict[str, Any], out_dir: Path, svg: bool) -> list[Path]:
        """Every file `bench process` writes for these results (report.html last)."""
        raise NotImplementedError


registry: Registry[ExperimentKind] = Registry("experiment kind", "bench.kinds", None)


def kind_of(results_or_experiment: dict[str, Any]) -> ExperimentKind | None:
    """The registered kind of a results file's experiment, or None for search."""
    experiment = results_or_experiment.get("experiment", results_or_experiment) or {}
    name = experiment.get("kind") or SEARCH
    return None if name == SEARCH else registry.get(name)()
