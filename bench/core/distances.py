"""Canonical metric names and their aliases.

Every stage speaks the same six names. ``angular`` means cosine: the harness
L2-normalises database and queries before they reach a backend or the ground
truth, so a backend may treat angular data as inner product on unit vectors.
``hamming`` applies to packed binary codes (uint8, 8 bits per byte, MSB first).
``l1`` is the cityblock (Manhattan) distance, the original study's best metric.
``jensen-shannon`` is for non-negative features: the harness scales every row to
sum 1 (a distribution), and the distance is the JS divergence with natural logs,
0.5 * (KL(p || m) + KL(q || m)), m = (p + q) / 2, as Faiss' METRIC_JensenShannon
computes it (scipy's ``jensenshannon`` is its square root: the same ranking).
"""

from __future__ import annotations

from bench.core.errors import BenchError

METRICS = ("euclidean", "angular", "ip", "hamming", "l1", "jensen-shannon")

#: metrics without a matrix-product form: exact search scores them block by block
BLOCKWISE_METRICS = ("l1", "jensen-shannon")
#: metrics whose features must be non-negative (rows are scaled to sum 1)
DISTRIBUTION_METRICS = ("jensen-shannon",)

_ALIASES = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "angular": "angular",
    "cosine": "angular",
    "ip": "ip",
    "inner_product": "ip",
    "dot": "ip",
    "hamming": "hamming",
    "l1": "l1",
    "cityblock": "l1",
    "manhattan": "l1",
    "jensen-shannon": "jensen-shannon",
    "jensen_shannon": "jensen-shannon",
    "jensenshannon": "jensen-shannon",
    "js": "jensen-shannon",
}


def canonical_metric(name: str) -> str:
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        raise BenchError(
            f"unknown metric {name!r}; expected one of: {', '.join(sorted(_ALIASES))}"
        ) from None
