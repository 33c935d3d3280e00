"""The run record's derived facts, each defined once.

``bench run``'s table, ``bench compare``, the report's tables and the plots all
read a run's identity, score, index size and parameter text through these
functions, so one run shows one figure everywhere (tests/test_record.py checks
that they agree).
"""

from __future__ import annotations

from typing import Any

from bench.core.fingerprint import fingerprint_obj

#: parameters that name the index family rather than tune it; long and already in the label
HIDDEN_PARAMS = ("factory", "index_binary_factory")
#: measured index-size fields, most faithful first (anonymous-memory growth excludes the
#: page cache of memory-mapped data; USS growth is the older figure)
MEASURED_SIZE_FIELDS = ("index_anon_bytes", "index_uss_bytes")


def run_key(
    *, extractor: str | None, algorithm: str, build: dict[str, Any], query: dict[str, Any],
    k: int, mode: str, threads: int, sweep: dict[str, Any] | None = None,
) -> str:
    """A run's identity: what resume skips and what the gate matches across files.

    ``sweep`` holds the swept axes of a metric / database-size sweep (the run's
    ``sweep`` field); without one the key is what it always was."""
    fields = {"extractor": extractor, "algorithm": algorithm, "build": build, "query": query,
              "k": k, "mode": mode, "threads": threads}
    if sweep:
        fields["sweep"] = sweep
    return fingerprint_obj(fields)[:20]


def record_key(run: dict[str, Any]) -> str:
    """:func:`run_key` recomputed from a stored record's own fields.

    Recomputed rather than read from ``id`` so that a hand-edited or older file is
    matched by what the run *was*, not by a stored string.
    """
    return run_key(extractor=run.get("extractor"), algorithm=run["algorithm"],
                   build=run.get("build_params") or {}, query=run.get("query_params") or {},
                   k=run["k"], mode=run.get("mode", "batch"), threads=run.get("threads", 1),
                   sweep=run.get("sweep"))


def score_field(run: dict[str, Any]) -> str:
    """Which field a run is judged by: the identity hit rate when it has one, else recall."""
    return "hit_rate" if run.get("hit_rate") is not None else "recall"


def score(run: dict[str, Any]) -> float | None:
    value = run.get(score_field(run))
    return None if value is None else float(value)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def index_size(run: dict[str, Any] | None) -> tuple[str, float | None]:
    """Which index-size figure a run reports, and its bytes.

    The backend's own figure first: it is exact and repeatable, where a process's
    memory growth moves with the allocator. A measured growth only where the backend
    reported nothing (or a non-positive growth: allocator noise on tiny indexes is
    not a size).
    """
    if run is None:
        return "index_bytes", None
    own = _finite(run.get("index_bytes"))
    if own is not None:
        return "index_bytes", own
    for name in MEASURED_SIZE_FIELDS:
        measured = _finite(run.get(name))
        if measured is not None and measured > 0:
            return name, measured
    return MEASURED_SIZE_FIELDS[-1], None


def index_mb(run: dict[str, Any] | None) -> float | None:
    """Index size in MB (10^6 bytes), as :func:`index_size` chooses it."""
    size = index_size(run)[1]
    return None if size is None else size / 1e6


def param_text(params: dict[str, Any] | None) -> str:
    """`IVF256,Flat nprobe=4, M=16`: the compact form used in legends, tables and labels.

    A factory string is its own name (the key adds nothing but width); it comes first.
    """
    params = params or {}
    named = [str(params[k]) for k in HIDDEN_PARAMS if k in params]
    rest = ", ".join(f"{k}={v}" for k, v in params.items() if k not in HIDDEN_PARAMS)
    return " ".join(part for part in (*named, rest) if part)


def run_name(run: dict[str, Any]) -> str:
    """One line naming a run: extractor / label, build and query parameters, k and mode."""
    head = f"{run['extractor']} / " if run.get("extractor") else ""
    label = run.get("label") or run["algorithm"]
    shown = " ".join(part for part in (param_text(run.get("build_params")),
                                       param_text(run.get("query_params"))) if part)
    return f"{head}{label}{' ' + shown if shown else ''} k={run['k']} {run.get('mode', 'batch')}"
