"""The timing fields of an experiment: how many samples, how long, when to stop.

Defaults are chosen so the built-in ``quickstart`` stays within ~1.5x the time of the
old best-of-3 timing (measured on the shared 2-core machine, see README "How it
measures"): most points there reach ``max_point_s`` before ``target_ci``, so the budget
is what sets the cost. The gate experiment (``ci``) asks for more.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.core.options import StrictInt, StrictOptions


class TimingOptions(StrictOptions):
    """Mixed into ``Experiment``: the fields sit at the top level of the YAML."""

    #: at least this many timed samples per query point (95 % CI of a median needs 6)
    runs: StrictInt = Field(3, ge=1)
    #: each sample repeats the queries until it has lasted this long (seconds)
    min_sample_s: float = Field(0.02, ge=0)
    #: stop sampling a point when its median's 95 % CI is within +-this fraction
    target_ci: float = Field(0.02, gt=0)
    #: ... or when the point's samples have taken this long (seconds); `stable: false`
    max_point_s: float = Field(0.3, ge=0)
    #: build each configuration in this many fresh workers and pool their samples
    replicas: StrictInt = Field(1, ge=1)
    #: time: wall-clock QPS; instructions: Valgrind instruction counts of the searches
    counter: Literal["time", "instructions"] = "time"
