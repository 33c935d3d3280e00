"""Feature extractors, registered by name; plus the on-disk feature store.

Every module in this package (except ``base`` and ``store``) is discovered
automatically; third-party extractors use the ``bench.extractors`` entry point group.
"""

from bench.core.registry import Registry
from bench.extractors.base import Extractor

registry: Registry[Extractor] = Registry("extractor", "bench.extractors", __name__)
register = registry.register

__all__ = ["Extractor", "register", "registry"]
