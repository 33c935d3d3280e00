"""Download -> unpack -> swap into place -> record, idempotently and resumably.

Layout of a data directory:

    <data>/manifest.json            what is installed (see manifest.py)
    <data>/<target>                 the datasets and weights themselves
    <data>/.downloads/<name>/       archives in flight (.part) or awaiting unpacking
    <data>/.staging/<name>/         the next version of <target>, filled part by part

Each archive is unpacked into the staging folder as soon as it arrives and then
deleted (unless ``keep_archives``), and ``.staging/<name>.done.json`` remembers
which parts are in, so an interrupted multi-archive download (MIRFLICKR: five
zips) neither refetches nor doubles the disk use. Only when every part is in and
the file count checks out is the staging folder renamed onto the target: readers
see the old complete version or the new complete one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.core.errors import BenchError
from bench.datasets.download.fetch import fetch_file
from bench.datasets.download.manifest import (
    entry_is_valid,
    get_entry,
    now_iso,
    set_entry,
    tree_stats,
)
from bench.datasets.download.registry import DownloadableDataset, RemoteFile, Weights
from bench.datasets.download.unpack import RULES, DamagedArchive


@dataclass
class InstallOptions:
    force: bool = False  # replace what is there, even if valid or not ours
    keep_archives: bool = False
    progress: bool = True
    retries: int = 5
    timeout: float = 60.0
    backoff: float = 1.0


@dataclass
class InstallResult:
    name: str
    status: str  # "present" (nothing to do) or "installed"
    target: Path
    files_count: int
    total_bytes: int
    warnings: list[str] = field(default_factory=list)
    converted: Path | None = None


@dataclass
class _Job:
    name: str
    kind: str
    files: tuple[RemoteFile, ...]
    rule: str
    target: Path
    expect_files: int | None = None
    strict_count: bool = True


def install_dataset(source: DownloadableDataset, data_dir: Path,
                    options: InstallOptions | None = None) -> InstallResult:
    options = options or InstallOptions()
    job = _Job(source.name, "dataset", source.files, source.rule, data_dir / source.target,
               source.expect_files, source.strict_count)
    return _install(job, data_dir, options)


def install_weights(weights: Weights, data_dir: Path, options: InstallOptions | None = None,
                    out: Path | None = None) -> InstallResult:
    """Fetch a SimCLR TensorFlow checkpoint and convert it to a ``.pt`` state dict."""
    options = options or InstallOptions()
    out = (out or data_dir / weights.output).resolve()
    entry = get_entry(data_dir, weights.name) if data_dir.exists() else None
    if (not options.force and entry and entry_is_valid(data_dir, entry) and out.exists()
            and entry.get("converted") == str(out)):
        files, size = tree_stats(data_dir / entry["target"])
        return InstallResult(weights.name, "present", data_dir / entry["target"], files, size,
                             converted=out)
    job = _Job(weights.name, "weights", weights.files, weights.rule,
               data_dir / weights.target, None)
    result = _install(job, data_dir, options)
    _convert(weights, result.target, out)
    entry = get_entry(data_dir, weights.name) or {}
    entry.update(converted=str(out), converted_at=now_iso())
    set_entry(data_dir, weights.name, entry)
    result.converted = out
    result.status = "installed"
    return result


def _convert(weights: Weights, checkpoint_dir: Path, out: Path) -> None:
    try:
        from bench.extractors.neural.convert import convert_checkpoint
    except ImportError as exc:
        raise BenchError(
            f"{weights.name}: the TensorFlow checkpoint is in {checkpoint_dir}, but converting "
            f"it needs bench.extractors.neural.convert, which this installation lacks; once "
            f"it is available run "
            f"`bench convert {weights.family} {checkpoint_dir} {out}`"
        ) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    try:
        convert_checkpoint(weights.family, checkpoint_dir, tmp)
        os.replace(tmp, out)
    except BenchError as exc:
        raise BenchError(f"{weights.name}: checkpoint kept in {checkpoint_dir}; "
                         f"conversion failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _install(job: _Job, data_dir: Path, options: InstallOptions) -> InstallResult:
    data_dir.mkdir(parents=True, exist_ok=True)
    entry = get_entry(data_dir, job.name)
    warnings: list[str] = []
    if not options.force:
        if entry and entry_is_valid(data_dir, entry):
            files, size = tree_stats(job.target)
            return InstallResult(job.name, "present", job.target, files, size)
        if entry:
            warnings.append(f"{job.target} differs from what the manifest recorded; "
                            "downloading it again")
        elif job.target.exists():
            raise BenchError(
                f"{job.target} already exists but {data_dir / 'manifest.json'} has no record "
                f"of {job.name}: it was not downloaded by bench; move it away, or pass --force "
                "to replace it"
            )
    downloads = data_dir / ".downloads" / job.name
    staging = data_dir / ".staging" / job.name
    done_path = staging.with_name(f"{job.name}.done.json")
    if options.force:
        shutil.rmtree(staging, ignore_errors=True)
        done_path.unlink(missing_ok=True)
    done = _read_done(done_path)
    staging.mkdir(parents=True, exist_ok=True)
    unpack = RULES[job.rule]
    for remote in job.files:
        if remote.filename in done:
            continue
        fetched = fetch_file(remote, downloads / remote.filename, progress=options.progress,
                             retries=options.retries, timeout=options.timeout,
                             backoff=options.backoff)
        if options.progress and job.rule not in ("file", "flat"):
            Console(stderr=True).print(f"unpacking {remote.filename} ...", highlight=False)
        try:
            count = unpack(fetched.path, staging)
        except DamagedArchive as exc:
            aside = fetched.path.with_name(fetched.path.name + ".damaged")
            os.replace(fetched.path, aside)
            fetched.path.with_name(fetched.path.name + ".json").unlink(missing_ok=True)
            raise BenchError(f"{exc}; moved aside to {aside}, run again to download it "
                             "afresh") from exc
        done[remote.filename] = {
            "filename": remote.filename, "url": fetched.url, "size": fetched.size,
            "sha256": fetched.sha256, "sha256_verified": fetched.verified,
            "downloaded_at": now_iso(), "unpacked_files": count,
        }
        _write_done(done_path, done)
        if not options.keep_archives:
            fetched.path.unlink(missing_ok=True)
            fetched.path.with_name(fetched.path.name + ".json").unlink(missing_ok=True)
    is_file = job.rule == "file"
    payload = staging / job.files[0].filename if is_file else staging
    files, _ = tree_stats(payload)
    if job.expect_files is not None and files != job.expect_files:
        msg = f"{job.name}: expected {job.expect_files} files, the archives gave {files}"
        if job.strict_count:
            raise BenchError(f"{msg}; not the expected archive (pass --force to download again)")
        warnings.append(msg)
    _swap_into_place(payload, job.target)
    if is_file:
        shutil.rmtree(staging, ignore_errors=True)
    done_path.unlink(missing_ok=True)
    for folder in (downloads, downloads.parent, staging.parent):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: kept archives and other downloads stay
    files, size = tree_stats(job.target)
    set_entry(data_dir, job.name, {
        "kind": job.kind,
        "target": job.target.relative_to(data_dir).as_posix(),
        "files_count": files,
        "total_bytes": size,
        "installed_at": now_iso(),
        "sources": [done[f.filename] for f in job.files],
    })
    return InstallResult(job.name, "installed", job.target, files, size, warnings)


def _swap_into_place(payload: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists() or target.is_symlink():
        os.replace(target, old)
    try:
        os.replace(payload, target)
    except OSError as exc:
        if old.exists():
            os.replace(old, target)
        raise BenchError(f"cannot move {payload} to {target}: {exc}") from exc
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def _read_done(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_done(path: Path, done: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(done, indent=1))
    os.replace(tmp, path)


def status_of(source: DownloadableDataset | Weights, data_dir: Path) -> str:
    """present | modified | not ours | partial | absent, for `bench datasets list`."""
    target = data_dir / source.target
    entry = get_entry(data_dir, source.name) if data_dir.exists() else None
    if entry:
        return "present" if entry_is_valid(data_dir, entry) else "modified"
    if target.exists():
        return "not ours"
    if any((data_dir / d / source.name).exists() for d in (".downloads", ".staging")):
        return "partial"
    return "absent"
