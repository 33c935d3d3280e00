"""Retrieval datasets: one's own feature files, composed queries, caption files.

``feature-files``: database and query features from two files (any format of
``bench.extractors.precomputed``: .npy/.npz, HDF5, text, Parquet), possibly from
different models or modalities projected to one space (captions vs images),
plus per-side item metadata (labels, caption, source, relevant ids, category).

``composed``: composed-retrieval queries (TIRG / ComposeAE style): a source
image plus a modification text, relevant = database images whose caption equals
the target caption (or explicit target ids). Query vectors come from the
user's model (``query_features``) or from the baseline composition
``(1 - w) * image / |image| + w * text / |text|``.

``captions``: text items from JSON / JSONL files, for the text extractors.

Metadata files are JSON lists or JSONL of objects: ``id`` (required), ``labels``
(a string or a list), ``text`` or ``caption``, ``identity``, and any other keys
(``source``, ``relevant``, ``category``, ...) which become ``Item.attrs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from bench.core.distances import canonical_metric
from bench.core.errors import BenchError
from bench.core.items import Item
from bench.core.options import StrictOptions
from bench.datasets import register
from bench.datasets.base import Dataset, ItemData, VectorData
from bench.extractors.precomputed import FeatureFile, file_signature, read_feature_file

ITEM_FIELDS = ("id", "labels", "text", "caption", "identity")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Objects of a JSON list or a JSONL file, each with an ``id``."""
    if not path.is_file():
        raise BenchError(f"items file {path} not found")
    raw = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            rows = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise BenchError(f"{path}: expected a JSON list of objects (or JSONL)")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "id" not in row:
            raise BenchError(f"{path}: entry {i} is not an object with an 'id'")
    return rows


def record_item(row: dict[str, Any], path: Path | None = None) -> Item:
    labels = row.get("labels", ())
    labels = (labels,) if isinstance(labels, str) else tuple(str(x) for x in labels)
    text = row.get("text", row.get("caption"))
    attrs = {k: v for k, v in row.items() if k not in ITEM_FIELDS}
    return Item(id=str(row["id"]), identity=row.get("identity"), path=path,
                text=None if text is None else str(text), labels=labels, attrs=attrs)


def items_for(ids: list[str], meta: Path | None, what: str) -> list[Item]:
    """One item per feature row, with the metadata of its id (or none)."""
    if meta is None:
        return [Item(id=i) for i in ids]
    records = {str(r["id"]): r for r in read_records(meta)}
    unknown = set(records) - set(ids)
    if unknown and len(unknown) == len(records):
        raise BenchError(f"{meta}: none of its ids matches the {what} feature ids "
                         f"(e.g. {next(iter(unknown))!r} vs {ids[0]!r})")
    return [record_item(records[i]) if i in records else Item(id=i) for i in ids]


def _as_float(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _describe(name: str, db: list[Item], q: list[Item], **extra: Any) -> dict[str, Any]:
    return {"dataset": name, "n_database": len(db), "n_queries": len(q),
            "n_database_labelled": sum(bool(it.labels or it.text) for it in db),
            "n_queries_labelled": sum(bool(it.labels or it.text) for it in q), **extra}


class FeatureSide(FeatureFile):
    """A features file plus the metadata of its items (labels, caption, source, ...)."""

    items: str | None = Field(None, description="metadata JSON / JSONL by id")


class FeatureFilesOptions(StrictOptions):
    database: FeatureSide
    queries: FeatureSide
    metric: str | None = Field(None, description="the metric the features were trained for")


@register("feature-files")
class FeatureFiles(Dataset):
    """Database and query features from files, with labels / captions / sources by id."""

    Options = FeatureFilesOptions
    description = "your own database and query feature files (+ item metadata)"

    def load(self) -> VectorData:
        o: FeatureFilesOptions = self.options  # type: ignore[assignment]
        base = self.context.base_dir
        db_ids, db = read_feature_file(o.database, base)
        q_ids, q = read_feature_file(o.queries, base)
        db_items = items_for(db_ids, self.resolve(o.database.items) if o.database.items
                             else None, "database")
        q_items = items_for(q_ids, self.resolve(o.queries.items) if o.queries.items else None,
                            "query")
        return VectorData(
            database=_as_float(db), queries=_as_float(q),
            metric=canonical_metric(o.metric) if o.metric else None,
            database_items=db_items, query_items=q_items,
            description=_describe(self.registered_name, db_items, q_items, files={
                **file_signature(o.database, base), **file_signature(o.queries, base)}),
        )


class BaselineComposition(StrictOptions):
    text_features: FeatureFile = Field(description="modification-text features by query id")
    text_weight: float = Field(0.5, ge=0, le=1)


class ComposedOptions(StrictOptions):
    database: FeatureFile
    database_items: str = Field(description="database metadata: id, caption (text), labels")
    queries: str = Field(description="queries: id, source, target caption or targets ids")
    query_features: FeatureFile | None = Field(None, description="composed vectors by query id")
    baseline: BaselineComposition | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ComposedOptions:
        if (self.query_features is None) == (self.baseline is None):
            raise ValueError("give exactly one of query_features (your model's composed "
                             "vectors) or baseline (image + text composition)")
        return self


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


@register("composed")
class Composed(Dataset):
    """Composed queries (source image + modification) against captioned database images."""

    Options = ComposedOptions
    description = "composed retrieval: precomputed composed queries or a baseline composition"

    def load(self) -> VectorData:
        o: ComposedOptions = self.options  # type: ignore[assignment]
        base = self.context.base_dir
        db_ids, db = read_feature_file(o.database, base)
        db_items = items_for(db_ids, self.resolve(o.database_items), "database")
        row_of = {i: r for r, i in enumerate(db_ids)}
        q_items = []
        for row in read_records(self.resolve(o.queries)):
            item = record_item({k: v for k, v in row.items() if k not in ("target", "targets")})
            if "target" in row:
                item.text = str(row["target"])  # judged by caption equality (match: text)
            if "targets" in row:
                item.attrs["relevant"] = [str(t) for t in row["targets"]]
            source = item.attrs.get("source")
            if source is None or str(source) not in row_of:
                raise BenchError(f"{o.queries}: query {item.id!r} needs a 'source' that is a "
                                 f"database id, got {source!r}")
            item.attrs["source"] = str(source)
            q_items.append(item)
        if not q_items:
            raise BenchError(f"{o.queries}: no queries")
        if o.query_features is not None:
            q = self._by_id(o.query_features, [it.id for it in q_items], "query_features")
            how = "precomputed"
        else:
            assert o.baseline is not None
            text = self._by_id(o.baseline.text_features, [it.id for it in q_items],
                               "baseline.text_features")
            image = np.asarray(db[[row_of[it.attrs["source"]] for it in q_items]], np.float64)
            if text.shape[1] != image.shape[1]:
                raise BenchError(f"baseline.text_features have dimension {text.shape[1]} but "
                                 f"the database {image.shape[1]}; the baseline adds them")
            w = o.baseline.text_weight
            q = (1 - w) * _unit(image) + w * _unit(text)
            how = f"baseline (1 - {w}) * image + {w} * text, each L2-normalised"
        return VectorData(
            database=_as_float(db), queries=_as_float(q), database_items=db_items,
            query_items=q_items,
            description=_describe(self.registered_name, db_items, q_items, queries=how),
        )

    def _by_id(self, spec: FeatureFile, ids: list[str], what: str) -> np.ndarray:
        file_ids, feats = read_feature_file(spec, self.context.base_dir)
        row_of = {i: r for r, i in enumerate(file_ids)}
        missing = [i for i in ids if i not in row_of]
        if missing:
            raise BenchError(f"{what} ({spec.path}): no row for query id {missing[0]!r} "
                             f"({len(missing)} missing)")
        return np.asarray(feats[[row_of[i] for i in ids]], np.float64)


class CaptionsOptions(StrictOptions):
    database: str = Field(description="JSON / JSONL items with id and text (or caption)")
    queries: str = Field(description="JSON / JSONL items with id and text (or caption)")


@register("captions")
class Captions(Dataset):
    """Text items from files, for the text extractors (text, tfidf-svd)."""

    Options = CaptionsOptions
    description = "text items (captions) with labels, from JSON / JSONL files"

    def load(self) -> ItemData:
        o: CaptionsOptions = self.options  # type: ignore[assignment]
        parts = []
        for name in (o.database, o.queries):
            path = self.resolve(name)
            items = [record_item(r) for r in read_records(path)]
            no_text = next((it.id for it in items if it.text is None), None)
            if no_text is not None:
                raise BenchError(f"{path}: item {no_text!r} has no text or caption")
            parts.append(items)
        db, q = parts
        return ItemData(db, q, modality="text",
                        description=_describe(self.registered_name, db, q))
