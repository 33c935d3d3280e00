"""``<data dir>/manifest.json``: what was installed there, from where, when, and its checksums.

The manifest is what makes a second ``download`` free: an entry whose target still
has the recorded number of files and bytes is "present and valid". It is also the
provenance a results file can point at. Writes are read-modify-write of one entry
under an advisory lock, then an atomic replace, so two downloads into the same
data directory do not lose each other's entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError

MANIFEST_NAME = "manifest.json"
FORMAT = 1


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def manifest_path(data_dir: Path) -> Path:
    return data_dir / MANIFEST_NAME


def load_manifest(data_dir: Path) -> dict[str, Any]:
    path = manifest_path(data_dir)
    if not path.exists():
        return {"format": FORMAT, "entries": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable manifest ({exc}); move it away to start a "
                         "new one") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise BenchError(f"{path}: expected an object with an 'entries' object")
    return data


def get_entry(data_dir: Path, name: str) -> dict[str, Any] | None:
    entry = load_manifest(data_dir)["entries"].get(name)
    return entry if isinstance(entry, dict) else None


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: last writer wins, which is still a valid file
        yield
        return
    with open(data_dir / f".{MANIFEST_NAME}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def set_entry(data_dir: Path, name: str, entry: dict[str, Any] | None) -> None:
    """Record (or with ``None`` forget) one entry without disturbing the others."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        data = load_manifest(data_dir)
        if entry is None:
            data["entries"].pop(name, None)
        else:
            data["entries"][name] = entry
        data["format"] = FORMAT
        _write_atomic(manifest_path(data_dir), data)


def tree_stats(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` (or of the file itself), hidden files excluded."""
    if path.is_file():
        return 1, path.stat().st_size
    files = size = 0
    for root, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for n in names:
            if not n.startswith("."):
                files += 1
                size += os.stat(os.path.join(root, n)).st_size
    return files, size


def entry_is_valid(data_dir: Path, entry: dict[str, Any]) -> bool:
    """Cheap validity: the target exists with the recorded file count and total size.

    Content is not re-hashed (hundreds of GB for MIRFLICKR); ``--verify`` style
    re-hashing of single files is done by the installer where it matters.
    """
    target = data_dir / entry.get("target", "\0")
    if not target.exists():
        return False
    return tree_stats(target) == (entry.get("files_count"), entry.get("total_bytes"))
