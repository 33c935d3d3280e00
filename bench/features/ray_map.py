"""Feature extraction spread over Ray workers, written into the feature store's own cache.

A drop-in for ``bench.features.store.extract_features`` (same arguments plus
``shards``): the items are cut into contiguous shards, each shard is decoded and
extracted by one Ray task (``extract_batch`` of the store, so skipping unreadable items
works exactly as on one machine), and the driver writes every finished shard as one
chunk file of the store's format into the entry's ``chunks/`` folder the moment it
arrives. The cache key and the final assembly are the store's, so a later local run
reuses the features, and an interrupted run resumes per shard: a shard whose items
are all covered by chunk files already on disk is not recomputed (whichever executor
wrote them).

Results travel back through Ray's object store, so only the driver writes to the cache;
workers need to read the items themselves (image files on a shared filesystem, or text
which travels with the item).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.core.fingerprint import fingerprint_obj
from bench.core.items import Item
from bench.extractors.base import Extractor
from bench.features import store

logger = logging.getLogger(__name__)

#: items per Ray task when ``shards`` is not given: large enough to amortise a task's
#: overhead (~ms) and the extractor's start-up, small enough to resume cheaply
SHARD_ITEMS = 2048


def entry_path(extractor: Extractor, items: Sequence[Item], cache_dir: Path | str,
               dataset_fingerprint: str) -> Path:
    """The store's cache entry for these items (same key as ``store.extract_features``)."""
    width, dtype = store._output_spec(extractor)
    key = fingerprint_obj({"store": store.STORE_VERSION, "dataset": dataset_fingerprint,
                           "items": store.items_fingerprint(items),
                           "extractor": extractor.fingerprint(), "width": width,
                           "dtype": dtype.str})
    name = extractor.registered_name or type(extractor).__name__
    return Path(cache_dir) / "features" / f"{name}-{key}"


def _extract_shard(extractor: Extractor, positions: np.ndarray,
                   items: list[Item]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Body of one Ray task: decode + extract a shard in batches of the store's size."""
    from threadpoolctl import threadpool_limits

    pos_parts, feat_parts, skipped = [], [], []
    with threadpool_limits(1):  # one task per CPU: the extractor's own threads would fight
        for start in range(0, len(items), store.BATCH):
            pos, feats, skip = store.extract_batch(
                extractor, positions[start : start + store.BATCH],
                items[start : start + store.BATCH])
            pos_parts.append(pos)
            feat_parts.append(feats)
            skipped.extend(skip)
    width, dtype = store._output_spec(extractor)
    feats = np.concatenate(feat_parts) if feat_parts else np.zeros((0, width), dtype)
    pos_all = np.concatenate(pos_parts) if pos_parts else np.zeros(0, np.int64)
    return pos_all, feats, skipped


def split(n: int, shards: int) -> list[np.ndarray]:
    bounds = np.linspace(0, n, max(1, min(shards, n)) + 1).astype(np.int64)
    return [np.arange(a, b, dtype=np.int64) for a, b in zip(bounds[:-1], bounds[1:],
                                                            strict=True) if b > a]


def extract_features_ray(
    extractor: Extractor, items: Sequence[Item], *, cache_dir: Path | str,
    dataset_fingerprint: str, shards: int | None = None, progress: bool = True,
) -> store.ExtractedFeatures:
    """Features of ``items`` computed by Ray tasks, cached and resumable per shard."""
    from bench.core.cluster import ensure_ray

    width, dtype = store._output_spec(extractor)
    entry = entry_path(extractor, items, cache_dir, dataset_fingerprint)
    name = extractor.registered_name or type(extractor).__name__
    if (entry / "meta.json").is_file():
        return store._load(entry)
    chunk_dir = entry / "chunks"
    chunks, done = store._read_chunks(chunk_dir)
    n_shards = shards or max(1, -(-len(items) // SHARD_ITEMS))
    todo = [s for s in split(len(items), n_shards) if not set(s.tolist()) <= done]
    if len(done):
        logger.info("features %s: resuming, %d of %d items already done", name, len(done),
                    len(items))
    rows = store._open_rows(entry, len(items), width, dtype)
    if not chunk_dir.is_dir():  # the row file was unusable and its chunks are gone
        chunks, done = [], set()
        todo = split(len(items), n_shards)
    next_index = 1 + max((int(f.stem) for f in chunks), default=-1)
    if todo:
        ray = ensure_ray()
        remote = ray.remote(num_cpus=1, max_retries=2)(_extract_shard)
        extractor_ref = ray.put(extractor)  # one copy for every task (models can be big)
        pending: dict[Any, np.ndarray] = {
            remote.remote(extractor_ref, s, [items[i] for i in s]): s for s in todo}
        with store._progress(len(items), len(done), f"features {name} (ray)", progress) as bar:
            task = bar.task_ids[0]
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                shard = pending.pop(ready[0])
                positions, feats, skipped = ray.get(ready[0])
                for p, reason in skipped:
                    logger.warning("skipped %s (%s): %s", items[p].id,
                                   items[p].path or "text", reason)
                writer = store._ChunkWriter(chunk_dir, next_index, rows)
                writer.add(positions, feats, skipped)
                writer.flush()  # one atomic chunk file per shard: the unit of resumption
                next_index = writer.index
                bar.advance(task, len(shard))
    chunks, done = store._read_chunks(chunk_dir)
    if len(done) != len(items):
        raise BenchError(f"features {name}: Ray tasks reported {len(done)} of {len(items)} "
                         "items; every item must be extracted or skipped")
    store._assemble(entry, chunks, items, rows)
    del rows
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return store._load(entry)
