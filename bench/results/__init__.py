"""results.json: the one loader and writer (store) and the run record's facts (record)."""

from bench.results.record import (
    HIDDEN_PARAMS,
    index_mb,
    index_size,
    param_text,
    record_key,
    run_key,
    run_name,
    score,
    score_field,
)
from bench.results.store import (
    OLDEST_SCHEMA,
    SCHEMA_VERSION,
    UPGRADES,
    ResultsFile,
    load_results,
    now_iso,
    results_dir,
)

__all__ = [
    "HIDDEN_PARAMS", "OLDEST_SCHEMA", "SCHEMA_VERSION", "UPGRADES", "ResultsFile",
    "index_mb", "index_size", "load_results", "now_iso", "param_text", "record_key",
    "results_dir", "run_key", "run_name", "score", "score_field",
]
