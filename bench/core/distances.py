"""Canonical metric names and their aliases.

Every stage speaks the same four names. ``angular`` means cosine: the harness
L2-normalises database and queries before they reach a backend or the ground
truth, so a backend may treat angular data as inner product on unit vectors.
``hamming`` applies to packed binary codes (uint8, 8 bits per byte, MSB first).
"""

from __future__ import annotations

from bench.core.errors import BenchError

METRICS = ("euclidean", "angular", "ip", "hamming")

_ALIASES = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "angular": "angular",
    "cosine": "angular",
    "ip": "ip",
    "inner_product": "ip",
    "dot": "ip",
    "hamming": "hamming",
}


def canonical_metric(name: str) -> str:
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        raise BenchError(
            f"unknown metric {name!r}; expected one of: {', '.join(sorted(_ALIASES))}"
        ) from None
