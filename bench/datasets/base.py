"""The dataset contract.

A dataset turns the options of an experiment's ``dataset:`` section into either

- ``VectorData``: ready vectors (synthetic data, ann-benchmarks HDF5, fvecs, ...),
  possibly with the file's own ground truth; or
- ``ItemData``: items (images or texts) that an extractor turns into vectors.

Both may carry ``Item`` metadata (ids, identities, attributes such as the attack
applied to a query), which identity and label relevance need.

Options are a pydantic model with ``extra="forbid"`` so a misspelled key in the
YAML is reported with its path instead of being silently ignored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.core.items import Item
from bench.core.options import StrictOptions


@dataclass
class VectorData:
    database: np.ndarray  # (n, d) float32, or (n, bits // 8) uint8 packed codes; may be a memmap
    queries: np.ndarray
    metric: str | None = None  # the metric the source declares, if any
    neighbors: np.ndarray | None = None  # the source's own ground truth ids (n_queries, K)
    distances: np.ndarray | None = None
    database_items: list[Item] | None = None
    query_items: list[Item] | None = None
    description: dict[str, Any] = field(default_factory=dict)
    #: a separate set that never enters the database: score normalisation and
    #: descriptor post-processing are fitted on it (copy detection, issue #17)
    background: np.ndarray | None = None
    #: a second separate set that only fits descriptor post-processing (``training:``)
    training: np.ndarray | None = None


@dataclass
class ItemData:
    database: list[Item]
    queries: list[Item]
    modality: str = "image"  # "image" or "text"
    description: dict[str, Any] = field(default_factory=dict)
    #: the dataset's ``background:`` items (never in the database), see VectorData
    background: list[Item] = field(default_factory=list)
    #: the dataset's ``training:`` items (post-processing fit only), see VectorData
    training: list[Item] = field(default_factory=list)


@dataclass
class DatasetContext:
    seed: int
    cache_dir: Path
    base_dir: Path  # relative paths in the experiment file resolve against this
    data_root: Path | None = None  # BENCH_DATA, for datasets that look up default folders


class Dataset(ABC):
    Options: ClassVar[type[StrictOptions]] = StrictOptions
    registered_name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, options: StrictOptions, context: DatasetContext) -> None:
        self.options = options
        self.context = context

    @abstractmethod
    def load(self) -> VectorData | ItemData: ...

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.context.base_dir / p)
