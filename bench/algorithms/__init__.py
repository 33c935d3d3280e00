"""Search backends: one module each, registered by name on import.

Every module in this package (except ``base``) is a built-in backend and is
discovered automatically; third-party backends use the ``bench.algorithms``
entry point group.
"""

from bench.algorithms.base import Backend
from bench.core.registry import Registry

registry: Registry[Backend] = Registry(
    "algorithm", "bench.algorithms", __name__, base=Backend
)
register = registry.register

__all__ = ["Backend", "register", "registry"]
