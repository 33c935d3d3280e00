"""The feature extractor contract.

An extractor maps a batch of items (PIL images, texts or raw vectors) to either a
float32 matrix (n, dim) or packed binary codes (n, dim // 8) uint8, MSB first,
for Hamming search. It declares its modality, dimension and metric family so
the harness can check an experiment before extracting anything.

Neural extractors load weights from a local file named in the experiment;
nothing is downloaded at run time.

The feature store (bench.features.store) drives extraction, caching and
skipping of unreadable items. By default it decodes items and calls
``extract`` on batches; an extractor with its own pipeline (a torch DataLoader
keeping a model busy) overrides ``run_pipeline``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.core.items import Item
from bench.core.options import StrictOptions


class Extractor(ABC):
    Options: ClassVar[type[StrictOptions]] = StrictOptions
    registered_name: ClassVar[str] = ""
    modality: ClassVar[str] = "image"  # "image", "text" or "vector"
    #: "float" (float32 features) or "binary" (packed uint8 codes for Hamming)
    family: ClassVar[str] = "float"

    def __init__(self, options: StrictOptions) -> None:
        self.options = options

    @property
    @abstractmethod
    def dim(self) -> int:
        """Feature dimension (number of bits for binary codes)."""

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the features: name, options, weights hash, preprocessing."""
        return {"extractor": self.registered_name, **self.options.model_dump(mode="json")}

    @abstractmethod
    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        """Features of a batch of decoded items (PIL images or strings)."""

    def run_pipeline(
        self,
        items: Sequence[Item],
        on_batch: Callable[[np.ndarray, np.ndarray, list[tuple[int, str]]], None],
        *,
        workers: int,
    ) -> bool:
        """Optional own pipeline. Call ``on_batch(positions, features, skipped)`` per batch,
        where positions index into ``items`` and skipped lists (position, reason).
        Return False to let the store use its default pipeline."""
        return False


def decode(item: Item, modality: str) -> Any:
    """The object an extractor's ``extract`` receives for one item."""
    if modality == "image":
        from PIL import Image

        if item.path is None:
            raise ValueError("item has no path")
        with Image.open(item.path) as im:
            im.load()  # forces a full decode: truncated files fail here, not later
            return im.convert("RGB")
    if modality == "text":
        if item.text is not None:
            return item.text
        if item.path is None:
            raise ValueError("item has neither text nor path")
        return Path(item.path).read_text(encoding="utf-8")
    raise ValueError(f"the feature store cannot decode {modality} items")
