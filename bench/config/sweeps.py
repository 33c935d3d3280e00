"""The sweep axes of a search experiment: metrics, query threads, database sizes.

Each axis multiplies the whole build / query grid, so one experiment answers "how
do time and recall change with the database size, the metric, the thread count"
instead of one experiment (and one report) per value. ``build_threads`` is no
axis: it only keeps index builds fast when the *query* threads are few.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, field_validator, model_validator

from bench.core.distances import canonical_metric
from bench.core.errors import BenchError
from bench.core.options import StrictInt, StrictOptions


class SweepOptions(StrictOptions):
    #: one metric, or a list: the whole grid runs once per metric (``metrics``)
    metric: str | list[str]
    #: query threads: one count, or a list (a thread sweep: each count is its own run)
    threads: StrictInt | list[StrictInt] = 1
    #: threads while building an index; default (None): every core this process may use,
    #: resolved and recorded per run (``build_thread_count``)
    build_threads: StrictInt | None = Field(None, ge=1)
    #: database-size sweep: the grid runs on nested prefixes of one seeded database order
    #: (identity data keeps every original). ``dataset: {sizes: [...]}`` is the same.
    database_sizes: list[StrictInt] | None = None

    @model_validator(mode="before")
    @classmethod
    def _dataset_sizes(cls, raw: Any) -> Any:
        """``dataset.sizes`` is a harness key, not a dataset option: moved to
        ``database_sizes`` before the dataset's own options are validated."""
        if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), dict):
            return raw
        if "sizes" not in raw["dataset"]:
            return raw
        if raw.get("database_sizes") is not None:
            raise ValueError("give database sizes once: dataset.sizes or database_sizes")
        dataset = dict(raw["dataset"])
        return {**raw, "dataset": dataset, "database_sizes": dataset.pop("sizes")}

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | list[str]) -> str | list[str]:
        values = value if isinstance(value, list) else [value]
        try:
            canonical = [canonical_metric(v) for v in values]
        except BenchError as exc:
            raise ValueError(str(exc)) from None
        if not canonical or len(set(canonical)) != len(canonical):
            raise ValueError(f"expected one metric or a list of distinct metrics, got {value!r}")
        return canonical if isinstance(value, list) else canonical[0]

    @field_validator("threads")
    @classmethod
    def _threads(cls, value: int | list[int]) -> int | list[int]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v < 1 for v in values) or len(set(values)) != len(values):
            raise ValueError(f"expected a thread count >= 1 or a list of distinct ones, "
                             f"got {value!r}")
        return value

    @field_validator("database_sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value or any(v < 1 for v in value) or len(set(value)) != len(value):
            raise ValueError(f"expected a non-empty list of distinct sizes >= 1, got {value!r}")
        return sorted(value)

    @property
    def metrics(self) -> list[str]:
        return list(self.metric) if isinstance(self.metric, list) else [self.metric]

    @property
    def thread_counts(self) -> list[int]:
        return list(self.threads) if isinstance(self.threads, list) else [self.threads]

    @property
    def build_thread_count(self) -> int:
        """``build_threads``, or every core this process may use (what the libraries
        use by default: single-threaded builds were 2x slower or more)."""
        return self.build_threads or max(1, len(os.sched_getaffinity(0)))
