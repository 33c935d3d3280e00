"""Atomic files: every stage writes through these, so a run killed at any moment
(SIGKILL included) leaves the previous or the next complete file, never a torn one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bench.core.errors import BenchError


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def _atomic_file(path: Path, prefix: str, suffix: str) -> Iterator[BinaryIO]:
    """A temporary file beside ``path``, synced and renamed over it on success and
    removed on any failure, so readers see the old file or the new one, never half.

    mkstemp creates 0600; the file gets the mode the umask gives any new file, so
    results and baselines stay readable by whoever could read an ordinary file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, read-only folder, quota: one line
            raise _unwritable(path, exc) from None
        raise


def _unwritable(path: Path, exc: OSError) -> BenchError:
    return BenchError(f"{path}: cannot be written ({exc.strerror or exc}); the previous "
                      "version, if any, is intact")


def _umask() -> int:
    """Read once at import: os.umask can only be read by setting it, and setting it while
    other threads create files (concurrent dispatch) would give them the wrong mode."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with _atomic_file(path, f".{path.name}.", ".tmp") as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, default=_json_default, allow_nan=True)
    atomic_write_bytes(path, text.encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with _atomic_file(path, f".{path.stem}.", ".npy") as fh:
        np.save(fh, array, allow_pickle=False)


def temp_file(folder: Path, prefix: str, suffix: str) -> Path:
    """An empty temporary file in ``folder`` with the mode the umask gives any new file
    (mkstemp's is 0600), for data written in place (a memory map) and renamed by the
    caller once complete and synced."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(tmp)


def reserve_disk(path: Path) -> None:
    """Allocate a (sparse, just created) memory-mapped file's blocks now: a store into a
    mapped page the full disk cannot back kills the process with SIGBUS, an allocation
    that fails here is one clear line."""
    try:
        with open(path, "r+b") as fh:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        raise _unwritable(path, exc) from None

