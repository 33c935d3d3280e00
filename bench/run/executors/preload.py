"""Imported once by the forkserver, so every forked worker starts with the heavy
modules (numpy, faiss, the backends) already loaded."""

import numpy  # noqa: F401

from bench.run.executors import worker  # noqa: F401

# Libraries a backend imports inside build(): loaded here, so their import is not
# counted as index memory (USS) of the first build in each worker.
for _module in ("faiss", "hnswlib", "annoy", "usearch.index", "sklearn.cluster"):
    try:
        __import__(_module)
    except Exception:  # pragma: no cover - optional libraries
        pass

try:
    from bench.algorithms import registry

    registry.names()
except Exception:  # pragma: no cover - the worker reports a broken backend itself
    pass
