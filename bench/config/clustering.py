"""The ``clustering:`` section of an experiment: a strict model and its run plan.

The section is validated before any distance is computed, so a misspelled key or
an eps list for a metric that has no meaning costs a second: unknown keys, wrong
types, linkages that need euclidean distances under another metric, are reported
as ``<file>: clustering.<key>: <what was expected>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from bench.core.errors import BenchError
from bench.core.options import StrictInt, StrictOptions

if TYPE_CHECKING:  # the experiment model types its clustering section with this module
    from bench.config.experiment import LoadedExperiment

ClusterMetric = Literal["euclidean", "cosine", "hamming"]
Linkage = Literal["single", "complete", "average", "centroid", "ward"]
LINKAGES: tuple[str, ...] = ("single", "complete", "average", "centroid", "ward")
#: linkages whose Lance-Williams update is only meaningful for euclidean distances
EUCLIDEAN_ONLY = ("centroid", "ward")
#: ``n_clusters: identities`` cuts at the true number of identity groups
NClusters = Annotated[StrictInt, Field(ge=1)] | Literal["identities"]

#: which clustering metrics each kind of prepared feature set supports
_METRICS_FOR = {
    "hamming": ("hamming", "euclidean"),  # euclidean on the unpacked 0/1 bits = sqrt(hamming)
    "euclidean": ("euclidean", "cosine"),
    "angular": ("cosine", "euclidean"),
}
_DEFAULT_METRIC = {"hamming": "hamming", "euclidean": "euclidean", "angular": "cosine"}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


class _Entry(StrictOptions):
    name: str | None = None
    #: one metric or a list; default: clustering.metrics
    metric: ClusterMetric | list[ClusterMetric] | None = None

    def metrics(self, default: list[str]) -> list[str]:
        return _as_list(self.metric) if self.metric is not None else list(default)


class HierarchicalEntry(_Entry):
    algorithm: Literal["hierarchical"]
    #: default: every linkage the metric allows
    linkage: Linkage | list[Linkage] | None = None
    n_clusters: NClusters | list[NClusters]


class DbscanEntry(_Entry):
    algorithm: Literal["dbscan"]
    eps: Annotated[float, Field(gt=0)] | list[Annotated[float, Field(gt=0)]]
    min_samples: Annotated[StrictInt, Field(ge=1)] | list[Annotated[StrictInt, Field(ge=1)]] = 2


class KMeansEntry(_Entry):
    algorithm: Literal["kmeans"]
    n_clusters: NClusters | list[NClusters]
    n_init: StrictInt = Field(4, ge=1)
    max_iter: StrictInt = Field(300, ge=1)


AlgorithmEntry = Annotated[HierarchicalEntry | DbscanEntry | KMeansEntry,
                           Field(discriminator="algorithm")]


class GridOptions(StrictOptions):
    """Image grids drawn by ``bench process``: the largest clusters of the best runs."""

    clusters: StrictInt = Field(8, ge=0, description="clusters drawn per run (largest first)")
    members: StrictInt = Field(6, ge=1, le=20, description="tiles per row")


class ClusteringOptions(StrictOptions):
    #: default metrics of entries that name none; default: the experiment's metric
    metrics: list[ClusterMetric] | None = None
    #: dense path only when the condensed matrix (and linkage's working copy) fits
    memory_budget_mb: float = Field(1024.0, gt=0)
    #: auto | dense | sparse; dense or sparse force one path (comparisons, tests)
    distances: Literal["auto", "dense", "sparse"] = "auto"
    #: cluster diameter = this quantile of the intra-cluster distances (1.0 = maximum)
    diameter_quantile: float = Field(0.95, gt=0, le=1)
    #: larger clusters estimate the diameter from this many seeded random pairs
    max_pairs: StrictInt = Field(200_000, ge=100)
    #: NMI normalisation; with "arithmetic" NMI equals the V-measure, already reported
    nmi_average: Literal["arithmetic", "geometric", "min", "max"] = "geometric"
    #: leave out items whose identity occurs once (e.g. distractors without copies)
    drop_singletons: bool = False
    grids: GridOptions = Field(default_factory=GridOptions)
    algorithms: list[AlgorithmEntry] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _non_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("expected at least one metric (euclidean, cosine, hamming)")
        return value


@dataclass(frozen=True)
class PlannedRun:
    """One clustering run: its entry, metric and parameters (before any data is read)."""

    group: int
    algorithm: str
    label: str
    metric: str
    linkage: str | None = None
    n_clusters: int | str | None = None
    eps: float | None = None
    min_samples: int | None = None
    n_init: int | None = None
    max_iter: int | None = None

    def build_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric}
        if self.linkage is not None:
            out["linkage"] = self.linkage
        if self.n_init is not None:
            out.update(n_init=self.n_init, max_iter=self.max_iter)
        return out

    def query_params(self) -> dict[str, Any]:
        if self.algorithm == "dbscan":
            return {"eps": self.eps, "min_samples": self.min_samples}
        return {"n_clusters": self.n_clusters}


def parse_clustering(loaded: LoadedExperiment) -> ClusteringOptions:
    """Check the typed ``clustering:`` section against the experiment's metric (the
    section itself was validated with the experiment, at load)."""
    exp = loaded.experiment
    src = loaded.source
    if exp.clustering is None:
        raise BenchError(f"{src}: clustering: a clustering experiment needs this section")
    options = exp.clustering
    if exp.metric not in _METRICS_FOR:
        raise BenchError(f"{src}: metric: clustering needs a distance: euclidean, angular "
                         f"(cosine) or hamming, got {exp.metric!r}")
    allowed = _METRICS_FOR[exp.metric]
    for i, metric in enumerate(options.metrics or []):
        if metric not in allowed:
            raise BenchError(_metric_error(src, f"metrics.{i}", metric, exp.metric, allowed))
    default = options.metrics or [_DEFAULT_METRIC[exp.metric]]
    for gi, entry in enumerate(options.algorithms):
        metrics = entry.metrics(default)
        for metric in metrics:
            if metric not in allowed:
                raise BenchError(_metric_error(src, f"algorithms.{gi}.metric", metric,
                                               exp.metric, allowed))
        if isinstance(entry, HierarchicalEntry) and entry.linkage is not None:
            for linkage in _as_list(entry.linkage):
                if linkage in EUCLIDEAN_ONLY and "euclidean" not in metrics:
                    raise BenchError(
                        f"{src}: clustering.algorithms.{gi}.linkage: {linkage} linkage is "
                        f"defined only for euclidean distances, but this entry clusters with "
                        f"{', '.join(metrics)}; add metric euclidean or drop {linkage}")
    return options


def _metric_error(src: Any, where: str, metric: str, exp_metric: str,
                  allowed: tuple[str, ...]) -> str:
    kind = "packed binary codes" if exp_metric == "hamming" else "float vectors"
    return (f"{src}: clustering.{where}: metric {metric!r} does not apply to the {kind} of an "
            f"experiment with metric {exp_metric}; expected one of: {', '.join(allowed)}")


def plan_runs(options: ClusteringOptions, exp_metric: str) -> list[PlannedRun]:
    """Every run in a stable order: entry, metric, linkage / eps, then the cut."""
    default = options.metrics or [_DEFAULT_METRIC[exp_metric]]
    runs: list[PlannedRun] = []
    for gi, entry in enumerate(options.algorithms):
        metrics = entry.metrics(default)
        for metric in metrics:
            tag = f" [{metric}]" if len(metrics) > 1 else ""
            if isinstance(entry, HierarchicalEntry):
                linkages = (_as_list(entry.linkage) if entry.linkage is not None
                            else list(LINKAGES))
                for linkage in linkages:
                    if linkage in EUCLIDEAN_ONLY and metric != "euclidean":
                        continue  # documented: ward / centroid run only under euclidean
                    label = f"{entry.name or 'hierarchical'}-{linkage}{tag}"
                    for n in _as_list(entry.n_clusters):
                        runs.append(PlannedRun(gi, "hierarchical", label, metric,
                                               linkage=linkage, n_clusters=n))
            elif isinstance(entry, DbscanEntry):
                label = f"{entry.name or 'dbscan'}{tag}"
                for eps in _as_list(entry.eps):
                    for ms in _as_list(entry.min_samples):
                        runs.append(PlannedRun(gi, "dbscan", label, metric, eps=float(eps),
                                               min_samples=int(ms)))
            else:
                label = f"{entry.name or 'kmeans'}{tag}"
                for n in _as_list(entry.n_clusters):
                    runs.append(PlannedRun(gi, "kmeans", label, metric, n_clusters=n,
                                           n_init=entry.n_init, max_iter=entry.max_iter))
    return runs
