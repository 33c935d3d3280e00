"""One tolerance applied to one run (``Check``), and the speed decisions on samples.

Split from bench.gate.compare so the statistics of the speed check (which samples, which
counter, the CI of the ratio: bench.core.stats.ratio_ci) read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config.compare import Tolerances
from bench.core.stats import ratio_ci

_EPS = 1e-9


@dataclass
class Check:
    """One tolerance applied to one run; ``change`` is absolute for recall,
    relative (0.1 = +10 %) for speed, build and memory."""

    metric: str
    ok: bool
    baseline: float | None = None
    current: float | None = None
    change: float | None = None
    limit: float | None = None
    note: str = ""
    ci: tuple[float, float] | None = None  # 95 % CI of ``change`` (speed)

    def describe(self) -> str:
        if self.note and self.change is None:
            return f"{self.metric}: {self.note}"
        what, fmt, scale = _DESCRIBE[self.metric]
        change = f"{self.change:+.4f}" if self.metric == "recall" else f"{self.change:+.1%}"
        if change.strip("-+0.%") == "":
            change = change.replace("-", "+")
        limit = f"{self.limit:.4f}" if self.metric == "recall" else f"{self.limit:.0%}"
        b, c = (format(v / scale, fmt) for v in (self.baseline, self.current))
        note = f" {self.note}" if self.note else ""
        ci = f", 95 % CI {self.ci[0]:+.1%} to {self.ci[1]:+.1%}" if self.ci else ""
        return f"{what}: {b} -> {c} ({change}{ci}, limit {limit}){note}"


_DESCRIBE = {  # metric -> (wording, number format, divisor)
    "recall": ("recall", ".4f", 1.0),
    "speed": ("speed ratio (QPS / reference QPS)", ".4g", 1.0),
    "build": ("build ratio (build s / reference search s)", ".4g", 1.0),
    "memory": ("index MB", ".2f", 1e6),
    "instructions": ("instructions per query", ",.0f", 1.0),
}


def build_seconds(run: dict[str, Any], counter: str = "time") -> float | None:
    """Build wall seconds, or with the cpu counter the build's CPU seconds when recorded."""
    if counter == "cpu" and run.get("build_cpu_s") is not None:
        return float(run["build_cpu_s"])
    return run.get("build_time_s")


def search_seconds(ref: dict[str, Any], counter: str = "time") -> float | None:
    """The reference's seconds per pass over the queries (CPU seconds with the cpu counter,
    when both its CPU samples and the run's build CPU time make that comparable)."""
    if counter == "cpu" and ref.get("samples_cpu_qps") and ref.get("n_queries"):
        qps = headline_qps(ref, "cpu")
        return ref["n_queries"] / qps if qps else None
    return ref.get("search_time_s")


def headline_qps(run: dict[str, Any], counter: str = "time") -> float | None:
    """``qps``, or with the cpu counter the median sample of the CPU-time QPS."""
    if counter == "cpu" and run.get("samples_cpu_qps"):
        values = sorted(float(v) for v in run["samples_cpu_qps"])
        return values[(len(values) - 1) // 2]
    return run.get("qps")


def samples(run: dict[str, Any], counter: str = "time") -> list[float]:
    """A run's QPS samples (wall time, or CPU time with the cpu counter); the headline
    alone for records from before sampling."""
    values = run.get("samples_cpu_qps" if counter == "cpu" else "samples_qps")
    if not values:
        values = run.get("samples_qps")
    return [float(v) for v in values] if values else [float(run["qps"])]


def _instructions_check(base: dict[str, Any], cur: dict[str, Any], tol: Tolerances) -> Check:
    """Instructions per query (Valgrind): deterministic, so a plain relative rise against
    a tight tolerance, with no reference run and no interval."""
    b, c = base.get("instructions_per_query"), cur.get("instructions_per_query")
    if not b or c is None:
        which = "baseline" if not b else "current"
        return Check("instructions", False, note=f"no instruction count in the {which} run "
                                                 "(run the experiment with counter: instructions)")
    change = c / b - 1
    return Check("instructions", change <= tol.instructions_rise + _EPS, b, c, change,
                 tol.instructions_rise)


def _speed_check(base: dict[str, Any], cur: dict[str, Any], base_ref: dict[str, Any] | None,
                 cur_ref: dict[str, Any] | None, tol: Tolerances, raw: bool, b_speed: float,
                 c_speed: float) -> Check:
    """The speed ratio with the 95 % CI of its change, from the samples of the run and of
    its reference in both files (bench.core.stats.ratio_ci). The run fails only when the
    whole interval lies beyond the tolerance: a change the samples cannot tell from
    noise passes, a change they resolve fails however small the tolerance."""
    c = tol.counter
    refs = (None, None) if raw else (samples(base_ref, c), samples(cur_ref, c))  # type: ignore[arg-type]
    _, low, high = ratio_ci(samples(base, c), samples(cur, c), *refs)
    change = c_speed / b_speed - 1
    ok = high - 1 >= -tol.speed_ratio_drop - _EPS
    note = ("(raw QPS)" if raw else "") + (" (CPU time)" if c == "cpu" else "")
    return Check("speed", ok, b_speed, c_speed, change, tol.speed_ratio_drop, note,
                 ci=(low - 1, high - 1))


