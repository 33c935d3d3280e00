"""The ``relevance:`` and ``query_sample:`` sections of an experiment, typed.

Typed here, with the rest of the experiment, so a typo (``mapp_cutoff``) fails at load,
before the dataset and ground truth; bench.scoring.judges applies them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from bench.core.options import StrictInt, StrictOptions


class ScoreNorm(StrictOptions):
    """Score normalisation (ISC 2021): each prediction's similarity minus ``beta`` times the
    similarity of the query's ``n``-th nearest neighbour in the dataset's background set."""

    beta: float = 1.0
    n: StrictInt = Field(10, ge=1)


class PooledOptions(StrictOptions):
    """Pooled copy-detection scoring (µAP, recall at precision) of identity runs."""

    enabled: bool = True
    #: predictions per query: its first ``predictions`` results (default: all k returned)
    predictions: StrictInt | None = Field(None, ge=1)
    #: keep only the highest-scoring ``cap`` predictions over all queries (ISC: 500K / 50K)
    cap: StrictInt | None = Field(None, ge=1)
    at_precision: list[float] = Field(default_factory=lambda: [0.9])
    #: also score with normalised similarities (needs a dataset with a background set)
    normalise: ScoreNorm | None = None
    #: at most this many points of each pooled PR curve in the record
    curve_points: StrictInt = Field(200, ge=2)

    @model_validator(mode="after")
    def _precisions(self) -> PooledOptions:
        if not self.at_precision or not all(0 < p <= 1 for p in self.at_precision):
            raise ValueError("at_precision: expected precisions in (0, 1]")
        return self


class PostProcess(StrictOptions):
    """``postprocess:`` of an experiment: PCA(-whitening) fitted on the dataset's background
    set, then L2-normalisation, applied to database and queries (bench.features.postprocess)."""

    pca_whiten: StrictInt | None = Field(None, ge=1)
    pca: StrictInt | None = Field(None, ge=1)
    l2norm: bool = False

    @model_validator(mode="after")
    def _one_pca(self) -> PostProcess:
        if self.pca_whiten is not None and self.pca is not None:
            raise ValueError("set pca_whiten or pca, not both")
        return self


class RelevanceOptions(StrictOptions):
    """The ``relevance:`` mapping of an experiment (a bare string sets only ``mode``)."""

    mode: Literal["knn", "identity", "labels", "groups"]
    #: labels: compare labels, the caption (Item.text, exact), or both
    match: Literal["labels", "text", "both"] = "labels"
    #: groups: JSON {query id: [database ids]} or CSV/TSV rows "query id, database id";
    #: without it, each query's attrs["relevant"] list
    file: str | None = None
    #: drop each query's attrs["source"] database item from its ranking and its relevant set
    exclude_source: bool = False
    #: keep only the first item of each identity / caption in a ranking, before the cut-off
    dedupe: bool = False
    #: cut-offs to report (default: the experiment's k values up to the run's k); ask the
    #: backend for more (k) than the largest cut-off when exclusion or dedupe shortens rankings
    at: list[StrictInt] | None = None
    #: AP over the first map_cutoff ranks (default: the largest cut-off)
    map_cutoff: StrictInt | None = Field(None, ge=1)
    ap_denominator: Literal["n_relevant", "min"] = "n_relevant"
    #: query attrs to break hit rate and recall down by (default: attack, family, category)
    by: list[str] | None = None
    #: at most this many points of the PR curve in the record (evenly spaced ranks)
    pr_points: StrictInt = Field(100, ge=2)
    #: identity mode: pooled µAP / recall at precision beside the per-query hit rate
    pooled: PooledOptions = Field(default_factory=PooledOptions)

    @model_validator(mode="before")
    @classmethod
    def _bare_mode(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A section that sets only ``mode`` is recorded as the bare mode name, as
        results.json always had it (bench process reads it that way)."""
        data = handler(self)
        if not (self.model_fields_set - {"mode"}):
            return self.mode
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RelevanceOptions:
        if self.mode != "labels" and self.match != "labels":
            raise ValueError("relevance.match applies to mode labels only")
        if self.at is not None and (not self.at or min(self.at) < 1):
            raise ValueError("at: expected a list of positive cut-offs")
        if self.mode != "identity" and "pooled" in self.model_fields_set:
            raise ValueError("relevance.pooled applies to mode identity only")
        return self


class QuerySample(StrictOptions):
    """``query_sample:``: metrics as mean and std over ``repeats`` sub-samples of queries."""

    size: StrictInt = Field(ge=1)
    repeats: StrictInt = Field(1, ge=1)
    #: default: the experiment's seed (filled in at load)
    seed: StrictInt | None = None
    replace: bool = False
