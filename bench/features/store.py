"""The feature store: extract once, cache on disk, resume after an interruption.

A cache entry is keyed by the caller's dataset fingerprint, a fingerprint of the
items themselves (ids, paths, sizes, mtimes, texts) and the extractor's
fingerprint, so a changed file or option never reuses stale features.

Extraction writes each batch's features straight into a memory-mapped row file
(one row per item, in item order) and, as it goes, atomic chunk files of the
positions done and skipped; a restarted extraction reads the chunks already
there and only does the rest. When everything is done the row file becomes the
entry's .npy (renamed; copied block by block only to squeeze out skipped items),
memory-mapped on every later use, and the chunks are removed.

Unreadable items (corrupt or truncated images, zero-byte files, missing files)
are skipped with a warning naming the file and reported to the caller; they
never stop the run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.core.fingerprint import fingerprint_obj
from bench.core.items import Item
from bench.extractors.base import Extractor, decode

logger = logging.getLogger(__name__)

STORE_VERSION = 1
BATCH = 32  # items per worker task
CHUNK = 2048  # items per resumable chunk on disk

OnBatch = Callable[[np.ndarray, np.ndarray, list[tuple[int, str]]], None]


@dataclass
class ExtractedFeatures:
    features: np.ndarray  # (len(kept), width) float32 or uint8, memory-mapped
    kept: np.ndarray  # int64 positions into the items passed in
    skipped: list[tuple[str, str]]  # (item id, reason)
    path: Path | None = None


def items_fingerprint(items: Sequence[Item]) -> str:
    """Ids and content identity (path + size + mtime, or text) of every item, in order."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for item in items:
        h.update(item.id.encode())
        if item.path is not None:
            try:
                st = os.stat(item.path)
                h.update(f"|{item.path}|{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                h.update(f"|{item.path}|missing".encode())
        if item.text is not None:
            h.update(b"|t|" + item.text.encode())
        h.update(b"\n")
    return h.hexdigest()


def _output_spec(extractor: Extractor) -> tuple[int, np.dtype]:
    if extractor.family == "binary":
        return -(-extractor.dim // 8), np.dtype(np.uint8)
    return extractor.dim, np.dtype(np.float32)


# --- decoding and the default worker pipeline ------------------------------------------

def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


_WORKER_EXTRACTOR: Extractor | None = None


def _init_worker(extractor: Extractor) -> None:
    global _WORKER_EXTRACTOR
    _WORKER_EXTRACTOR = extractor
    try:  # one process per core: the extractor's own threads would oversubscribe
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
        pass


def extract_batch(
    extractor: Extractor, positions: np.ndarray, items: Sequence[Item]
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Decode and extract one batch; a failing item is skipped, never the whole batch."""
    good_pos: list[int] = []
    decoded: list[Any] = []
    skipped: list[tuple[int, str]] = []
    for pos, item in zip(positions.tolist(), items, strict=True):
        try:
            decoded.append(decode(item, extractor.modality))
            good_pos.append(pos)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable"
            skipped.append((pos, _describe(exc)))
    width, dtype = _output_spec(extractor)
    if not decoded:
        return np.zeros(0, np.int64), np.zeros((0, width), dtype), skipped
    try:
        feats = np.asarray(extractor.extract(decoded))
    except Exception:  # noqa: BLE001 - retry one by one to isolate the failing item
        rows, kept = [], []
        for pos, obj in zip(good_pos, decoded, strict=True):
            try:
                rows.append(np.asarray(extractor.extract([obj]))[0])
                kept.append(pos)
            except Exception as exc:  # noqa: BLE001
                skipped.append((pos, f"extraction failed: {_describe(exc)}"))
        good_pos = kept
        feats = np.stack(rows) if rows else np.zeros((0, width), dtype)
    return np.asarray(good_pos, np.int64), feats, skipped


def _worker_batch(positions: np.ndarray, items: Sequence[Item]) -> Any:
    assert _WORKER_EXTRACTOR is not None
    return extract_batch(_WORKER_EXTRACTOR, positions, items)


def _batches(positions: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(positions), BATCH):
        yield positions[start : start + BATCH]


def default_pipeline(extractor: Extractor, items: Sequence[Item], on_batch: OnBatch, *,
                     workers: int) -> None:
    """Worker processes decode and extract batches; results come back in order."""
    positions = np.arange(len(items), dtype=np.int64)
    if workers <= 1 or len(items) <= BATCH:
        for pos in _batches(positions):
            on_batch(*extract_batch(extractor, pos, [items[i] for i in pos]))
        return
    # spawn: the parent may hold threads (progress bar, BLAS/OpenMP pools) that fork breaks.
    ctx = mp.get_context("spawn")
    window: deque[Future[Any]] = deque()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(extractor,)) as pool:
        for pos in _batches(positions):
            window.append(pool.submit(_worker_batch, pos, [items[i] for i in pos]))
            if len(window) >= workers * 4:
                on_batch(*window.popleft().result())
        while window:
            on_batch(*window.popleft().result())


# --- chunked, resumable storage ------------------------------------------------------

ROWS_FILE = "rows.npy"  # (n_items, width) memory map the features are written into


def _open_rows(entry: Path, n_items: int, width: int, dtype: np.dtype) -> np.memmap:
    """The entry's row file: one row per item, written in place as batches arrive.

    Features go straight into this memory map (page cache, written back by the kernel),
    never into a list of arrays: 500,000 x 4,096 float32 features would otherwise be
    8 GB in the driver twice over (the list, then its concatenation). A file left by
    an interrupted run is reopened, so the rows its chunk files cover are kept."""
    entry.mkdir(parents=True, exist_ok=True)
    path = entry / ROWS_FILE
    if path.is_file():
        try:
            rows = np.load(path, mmap_mode="r+")
            if rows.shape == (n_items, width) and rows.dtype == dtype:
                return rows
        except (OSError, ValueError, EOFError):
            pass
        shutil.rmtree(entry / "chunks", ignore_errors=True)  # rows unusable: so are chunks
    from bench.core.files import reserve_disk

    rows = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_items, width))
    reserve_disk(path)
    return rows


class _ChunkWriter:
    """Writes batches into the row file and records, every CHUNK items or so, an atomic
    chunk file of the positions done (and skipped), after the rows are flushed: a chunk
    file on disk means its rows are on disk."""

    def __init__(self, folder: Path, start_index: int, rows: np.memmap) -> None:
        self.folder = folder
        self.index = start_index
        self.rows = rows
        self.width, self.dtype = rows.shape[1], rows.dtype
        self.pos: list[np.ndarray] = []
        self.skipped: list[tuple[int, str]] = []
        self.count = 0

    def add(self, positions: np.ndarray, features: np.ndarray,
            skipped: list[tuple[int, str]]) -> None:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape != (len(positions), self.width):
            raise BenchError(
                f"extractor returned features of shape {features.shape} for {len(positions)} "
                f"items; expected ({len(positions)}, {self.width})"
            )
        positions = np.asarray(positions, np.int64)
        if len(positions):
            self.rows[positions] = features.astype(self.dtype, copy=False)
        self.pos.append(positions)
        self.skipped.extend(skipped)
        self.count += len(positions) + len(skipped)
        if self.count >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.count:
            return
        self.rows.flush()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.index:06d}.npz"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            positions=np.concatenate(self.pos) if self.pos else np.zeros(0, np.int64),
            skipped_pos=np.asarray([p for p, _ in self.skipped], np.int64),
            skipped_reason=np.asarray([r for _, r in self.skipped], dtype=str),
        )
        os.replace(tmp, path)
        self.index += 1
        self.pos, self.skipped, self.count = [], [], 0


def _read_chunks(folder: Path) -> tuple[list[Path], set[int]]:
    """Chunk files already written and every position they cover (kept or skipped)."""
    if not folder.is_dir():
        return [], set()
    files = sorted(folder.glob("[0-9]*.npz"))
    done: set[int] = set()
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            done.update(z["positions"].tolist())
            done.update(z["skipped_pos"].tolist())
    return files, done


#: rows copied at once when skipped items are squeezed out of the row file
_COPY_BYTES = 64 << 20


def _assemble(entry: Path, chunks: list[Path], items: Sequence[Item],
              rows: np.memmap) -> None:
    """features.npy from the row file: renamed as it is when no item was skipped (no
    copy at all), else the kept rows copied block by block into a new memory map."""
    from bench.core.files import atomic_save_npy, atomic_write_json

    kept_parts, skipped = [], []
    for f in chunks:
        with np.load(f, allow_pickle=False) as z:
            kept_parts.append(z["positions"])
            if "features" in z.files:  # a chunk written by an older store version
                rows[z["positions"]] = z["features"]
            skipped += list(zip(z["skipped_pos"].tolist(), z["skipped_reason"].tolist(),
                                strict=True))
    kept = np.unique(np.concatenate(kept_parts)) if kept_parts else np.zeros(0, np.int64)
    rows.flush()
    rows_path = entry / ROWS_FILE
    if len(kept) == len(items):
        os.replace(rows_path, entry / "features.npy")
    else:
        tmp = entry / f".features.{os.getpid()}.tmp.npy"
        width = rows.shape[1]
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=rows.dtype,
                                        shape=(len(kept), width))
        step = max(1, _COPY_BYTES // max(1, width * rows.dtype.itemsize))
        for start in range(0, len(kept), step):
            out[start : start + step] = rows[kept[start : start + step]]
        out.flush()
        del out
        os.replace(tmp, entry / "features.npy")
        rows_path.unlink(missing_ok=True)
    atomic_save_npy(entry / "kept.npy", kept.astype(np.int64))
    skipped.sort()
    meta = {"version": STORE_VERSION, "n_items": len(items), "n_kept": int(len(kept)),
            "skipped": [[items[p].id, reason] for p, reason in skipped]}
    atomic_write_json(entry / "meta.json", meta)  # written last: marks the entry complete


def _load(entry: Path) -> ExtractedFeatures:
    meta = json.loads((entry / "meta.json").read_text())
    return ExtractedFeatures(
        features=np.load(entry / "features.npy", mmap_mode="r"),
        kept=np.load(entry / "kept.npy"),
        skipped=[(str(i), str(r)) for i, r in meta["skipped"]],
        path=entry / "features.npy",
    )


def _progress(total: int, done: int, label: str, enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.0f} items/s" if task.speed else "- items/s")

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   Rate(), TimeRemainingColumn(), disable=not enabled)
    bar.add_task(label, total=total, completed=done)
    return bar


def extract_features(
    extractor: Extractor, items: Sequence[Item], *, cache_dir: Path | str,
    dataset_fingerprint: str, workers: int = 1, progress: bool = True,
) -> ExtractedFeatures:
    """Features of ``items`` (cached); skipped items are reported, never fatal."""
    width, dtype = _output_spec(extractor)
    key = fingerprint_obj({"store": STORE_VERSION, "dataset": dataset_fingerprint,
                           "items": items_fingerprint(items),
                           "extractor": extractor.fingerprint(), "width": width,
                           "dtype": dtype.str})
    name = extractor.registered_name or type(extractor).__name__
    entry = Path(cache_dir) / "features" / f"{name}-{key}"
    if (entry / "meta.json").is_file():
        logger.info("features %s: reusing %s", name, entry)
        return _load(entry)
    chunk_dir = entry / "chunks"
    chunks, done = _read_chunks(chunk_dir)
    todo = np.asarray([i for i in range(len(items)) if i not in done], np.int64)
    if len(done):
        logger.info("features %s: resuming, %d of %d items already done", name, len(done),
                    len(items))
    rows = _open_rows(entry, len(items), width, dtype)
    if not chunk_dir.is_dir():  # the row file was unusable and its chunks are gone
        chunks, done = [], set()
        todo = np.arange(len(items), dtype=np.int64)
    writer = _ChunkWriter(chunk_dir, len(chunks), rows)
    with _progress(len(items), len(done), f"features {name}", progress) as bar:
        task = bar.task_ids[0]

        def on_batch(positions: np.ndarray, feats: np.ndarray,
                     skipped: list[tuple[int, str]]) -> None:
            # positions are relative to the remaining items; map them back
            positions = todo[np.asarray(positions, np.int64)]
            skipped = [(int(todo[p]), reason) for p, reason in skipped]
            for p, reason in skipped:
                logger.warning("skipped %s (%s): %s", items[p].id, items[p].path or "text",
                               reason)
            writer.add(positions, feats, skipped)
            bar.advance(task, len(positions) + len(skipped))

        if len(todo):
            remaining = [items[i] for i in todo]
            if not extractor.run_pipeline(remaining, on_batch, workers=workers):
                default_pipeline(extractor, remaining, on_batch, workers=workers)
        writer.flush()
    chunks, done = _read_chunks(chunk_dir)
    if len(done) != len(items):
        raise BenchError(
            f"features {name}: the pipeline reported {len(done)} of {len(items)} items; "
            "every item must be extracted or skipped"
        )
    _assemble(entry, chunks, items, rows)
    shutil.rmtree(chunk_dir, ignore_errors=True)
    return _load(entry)
