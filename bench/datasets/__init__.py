"""Datasets: vector files, synthetic data, image collections; registered by name.

Every module in this package (except ``base``) is discovered automatically;
third-party datasets use the ``bench.datasets`` entry point group.
"""

from bench.core.items import Item
from bench.core.registry import Registry
from bench.datasets.base import Dataset, DatasetContext, ItemData, VectorData

registry: Registry[Dataset] = Registry("dataset", "bench.datasets", __name__)
register = registry.register

__all__ = ["Dataset", "DatasetContext", "Item", "ItemData", "VectorData", "register", "registry"]
