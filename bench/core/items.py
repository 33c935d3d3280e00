"""The item: the unit every stage passes along (datasets make them, extractors read
them, scoring compares their identities and labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Item:
    """One database or query item.

    ``id`` is unique within its set and namespaced by dataset (``bsds:100075``);
    ``identity`` is what identity relevance compares (also namespaced, so ids of
    two datasets never collide); ``attrs`` holds per-item facts such as
    ``{"attack": "jpeg_50", "family": "compression"}``.
    """

    id: str
    identity: str | None = None
    path: Path | None = None
    text: str | None = None
    labels: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
