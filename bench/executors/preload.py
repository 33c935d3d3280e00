"""Imported once by the forkserver, so every forked worker starts with the heavy
modules (numpy, faiss, the backends) already loaded."""

import numpy  # noqa: F401

from bench.executors import worker  # noqa: F401

try:
    from bench.algorithms import registry

    registry.names()
except Exception:  # pragma: no cover - the worker reports a broken backend itself
    pass
