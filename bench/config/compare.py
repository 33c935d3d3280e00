"""The ``compare:`` section of an experiment: the tolerances of its regression gate.

Typed here, with the rest of the experiment, so a typo fails at load; the gate
(bench.gate.compare) applies them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bench.core.options import StrictOptions


class Tolerances(StrictOptions):
    """The ``compare:`` section of an experiment file; CLI options override it.

    Speed is judged on the timing samples: a run fails when the whole 95 % interval of
    its speed-ratio change lies below ``-speed_ratio_drop`` (bench.gate.compare). The
    default of 10 % is what the shared 2-core machine can resolve with the ``ci``
    experiment's samples and replicas (benchmarks/noise.py); the old point comparison
    needed 60 % there. The build default stays wide: a build is one measurement, not
    samples (the worst run-to-run rise seen was 87 %, benchmarks/ci_spread.py).
    """

    recall_drop: float = Field(0.005, ge=0, description="largest allowed absolute recall drop")
    speed_ratio_drop: float = Field(
        0.1, ge=0, lt=1,
        description="largest allowed relative drop of QPS / reference QPS (its whole 95 % CI)"
    )
    build_ratio_rise: float = Field(
        1.0, ge=0, description="largest allowed relative rise of build time / reference time"
    )
    memory_rise: float = Field(0.1, ge=0, description="largest allowed relative index growth")
    counter: Literal["time", "cpu", "instructions"] = Field(
        "time", description="speed from wall-time samples, CPU-time samples (a machine "
                            "shared by other jobs), or Valgrind instruction counts")
    instructions_rise: float = Field(
        0.02, ge=0, description="largest allowed relative rise of instructions per query")
    reference: str | None = Field(
        None, description="label or algorithm of the reference run; 'none' compares raw figures"
    )
    min_build_s: float = Field(0.25, ge=0, description="build changes below this are noise")
    min_memory_bytes: int = Field(
        1 << 20, ge=0, description="USS changes below this are noise (not index_bytes)"
    )
