"""Archive -> layout rules, one per dataset shape.

Rules never use an archive member's path as a destination path: they pick the
members they need by pattern and write them under a name built from the member's
last component (and, for MIRFLICKR, its numeric folder), so a hostile or odd
archive cannot write outside the staging folder. Rules are tolerant of an extra
or missing top-level folder, because re-packaged copies of these archives differ
there. A rule may run again on the same staging folder after an interruption: it
overwrites what it wrote before.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from bench.core.errors import BenchError

CHUNK = 1 << 20
BSDS_SPLITS = ("train", "val", "test")
VECTOR_SUFFIXES = (".fvecs", ".ivecs", ".bvecs")


class DamagedArchive(BenchError):
    """The archive cannot be read; the installer moves it aside so it is fetched again."""


def _safe_name(name: str, archive: Path, member: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise BenchError(f"{archive}: member {member!r} has an unusable file name")
    return name


def _write(src: IO[bytes], dest: Path, archive: Path) -> None:
    try:
        with open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise BenchError(f"disk full while unpacking {archive.name} into {dest.parent}; "
                             "free some space and run again (the download is kept)") from exc
        raise


def _tar_members(archive: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            if m.isfile():
                yield m.name, (lambda m=m: tar.extractfile(m))  # type: ignore[misc]


def _zip_members(archive: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if not info.is_dir():
                yield info.filename, (lambda info=info: z.open(info))  # type: ignore[misc]


def _extract(archive: Path, staging: Path, pick: Callable[[PurePosixPath], Path | None],
             members: Iterator[tuple[str, Callable[[], IO[bytes]]]]) -> int:
    """Write every member ``pick`` maps to a relative path; duplicates are errors."""
    seen: set[Path] = set()
    try:
        for name, opener in members:
            rel = pick(PurePosixPath(name))
            if rel is None:
                continue
            for part in rel.parts:
                _safe_name(part, archive, name)
            if rel in seen:
                raise BenchError(f"{archive}: two members map to {rel}; unexpected layout")
            seen.add(rel)
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with opener() as src:
                _write(src, dest, archive)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError,
            zlib.error) as exc:
        raise DamagedArchive(f"{archive}: damaged or not the expected archive "
                             f"({type(exc).__name__}: {exc})") from exc
    return len(seen)


def unpack_bsds500(archive: Path, staging: Path) -> int:
    """BSR/BSDS500/data/images/{train,val,test}/<id>.jpg -> <id>.jpg (all 500 together)."""

    def pick(p: PurePosixPath) -> Path | None:
        parts = p.parts
        if (len(parts) >= 3 and parts[-3] == "images" and parts[-2] in BSDS_SPLITS
                and p.suffix.lower() == ".jpg"):
            return Path(parts[-1])
        return None

    return _extract(archive, staging, pick, _tar_members(archive))


def unpack_mirflickr(archive: Path, staging: Path) -> int:
    """images/<folder>/<N>.jpg -> <folder>/<N>.jpg; the folder is the nearest numeric one.

    MIRFLICKR-1M's imagesK.zip holds folders 10K..10K+9 of 10,000 images each under
    ``images/``; we do not rely on the ``images/`` level being there.
    """

    def pick(p: PurePosixPath) -> Path | None:
        if p.suffix.lower() != ".jpg" or any(x.startswith("__MACOSX") for x in p.parts):
            return None
        folder = next((x for x in reversed(p.parts[:-1]) if x.isdigit()), None)
        if folder is None:
            raise BenchError(f"{archive}: member {str(p)!r} is not in a numeric folder; "
                             "expected images/<folder>/<N>.jpg")
        return Path(folder, p.name)

    return _extract(archive, staging, pick, _zip_members(archive))


def unpack_texmex(archive: Path, staging: Path) -> int:
    """<name>/<name>_{base,query,learn}.fvecs, _groundtruth.ivecs -> flat files."""

    def pick(p: PurePosixPath) -> Path | None:
        return Path(p.name) if p.suffix.lower() in VECTOR_SUFFIXES else None

    return _extract(archive, staging, pick, _tar_members(archive))


def unpack_tf_zip(archive: Path, staging: Path) -> int:
    """A zipped TensorFlow checkpoint folder -> its ``checkpoint`` and ``model.ckpt-*`` files.

    The SimCLR v1 zips also hold a TF-Hub module that conversion does not need.
    """

    def pick(p: PurePosixPath) -> Path | None:
        if p.name == "checkpoint" or p.name.startswith("model.ckpt-"):
            return Path(p.name)
        return None

    n = _extract(archive, staging, pick, _zip_members(archive))
    if not any(p.name.endswith(".index") for p in staging.glob("model.ckpt-*")):
        raise BenchError(f"{archive}: no TensorFlow checkpoint (model.ckpt-*.index) inside")
    return n


def place_file(archive: Path, staging: Path) -> int:
    """The download is the file itself (HDF5, a checkpoint shard): hard-link or copy it."""
    dest = staging / archive.name
    dest.unlink(missing_ok=True)
    try:
        os.link(archive, dest)
    except OSError:
        with open(archive, "rb") as src:
            _write(src, dest, archive)
    return 1


RULES: dict[str, Callable[[Path, Path], int]] = {
    "file": place_file,
    "flat": place_file,
    "bsds500": unpack_bsds500,
    "mirflickr": unpack_mirflickr,
    "texmex": unpack_texmex,
    "tf-zip": unpack_tf_zip,
}
