"""Download one file: streamed into ``<dest>.part``, resumed, verified, then renamed.

Why each step:
- ``.part`` + rename: a file at ``dest`` is always complete, so "present" needs no
  guessing after a crash.
- HTTP range requests (``Range: bytes=N-`` with ``If-Range`` on the server's ETag or
  Last-Modified) resume an interrupted transfer, within one run (automatic retries)
  and across runs (the ``.part`` file and the URL it came from are kept). A server
  that ignores the range answers 200 and we restart from zero, which is also what
  happens for FTP: urllib's FTP handler has no REST support, so FTP never resumes.
- The size is checked against the registry (when recorded) and the server's
  Content-Length; the SHA-256 is computed while streaming and compared with the
  registry's digest when it is known. A mismatching file is moved aside, never used.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bench.core.errors import BenchError
from bench.datasets.download.registry import RemoteFile

CHUNK = 1 << 20
DISK_MARGIN = 16 << 20
USER_AGENT = "featbench-download/1"
NOT_FOUND = (403, 404, 410)


class ChecksumError(BenchError):
    """The bytes that arrived are not the recorded file; they were moved aside."""


@dataclass
class Fetched:
    path: Path
    url: str
    size: int
    sha256: str
    verified: bool  # the SHA-256 matched a digest recorded in the registry
    reused: bool  # already complete on disk, no transfer


class _Transient(Exception):
    """Worth retrying from where we are (dropped connection, timeout, 5xx)."""


class _Unavailable(Exception):
    """This URL cannot serve the file (not found, host unreachable): try the next one."""


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _append(f: BinaryIO, chunk: bytes) -> None:
    f.write(chunk)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _unreachable_reason(reason: object) -> str | None:
    """A one-line reason when the host cannot be reached at all (no point retrying)."""
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host ({reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable"
    return None


class _Download:
    """State of one file across attempts and URLs (hash progress survives retries)."""

    def __init__(self, remote: RemoteFile, dest: Path, progress: Any, timeout: float) -> None:
        self.remote = remote
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.part_meta = dest.with_name(dest.name + ".part.json")
        self.progress = progress
        self.task: Any = None
        self.timeout = timeout
        self.hasher = hashlib.sha256()
        self.hashed = 0  # bytes of .part already fed to the hasher

    def _restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.hasher, self.hashed = hashlib.sha256(), 0

    def _catch_up_hash(self) -> None:
        """Feed bytes of .part written by an earlier run to the hasher."""
        size = self.part.stat().st_size if self.part.exists() else 0
        if size == self.hashed:
            return
        if size < self.hashed:
            self.hasher, self.hashed = hashlib.sha256(), 0
        with open(self.part, "rb") as f:
            f.seek(self.hashed)
            while block := f.read(CHUNK):
                self.hasher.update(block)
                self.hashed += len(block)

    def attempt(self, url: str) -> int:
        """One request; returns the final size or raises _Transient / _Unavailable."""
        meta = _read_json(self.part_meta)
        if self.part.exists() and meta.get("url") != url:
            self._restart()  # bytes from another URL (or of unknown origin) cannot be trusted
        offset = self.part.stat().st_size if self.part.exists() else 0
        expected = self.remote.size
        if expected is not None and offset > expected:
            self._restart()
            offset = 0
        is_http = url.startswith(("http://", "https://"))
        if offset and not is_http:
            self._restart()  # FTP: no range support in urllib, resume = restart
            offset = 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if meta.get("validator"):
                headers["If-Range"] = meta["validator"]
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                total = _content_range_total(exc.headers.get("Content-Range", ""))
                if total == offset and (expected is None or expected == offset):
                    return offset  # the .part was already complete
                self._restart()
                raise _Transient(f"server refused the resume range ({exc.code})") from exc
            if exc.code in NOT_FOUND:
                raise _Unavailable(f"HTTP {exc.code} {exc.reason}") from exc
            if exc.code >= 500 or exc.code == 429:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
            raise BenchError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            unreachable = _unreachable_reason(exc.reason)
            if unreachable:
                raise _Unavailable(unreachable) from exc
            if "550" in str(exc.reason):  # FTP "file unavailable"
                raise _Unavailable(str(exc.reason)) from exc
            raise _Transient(str(exc.reason)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        with resp:
            return self._stream(resp, url, offset)

    def _stream(self, resp: Any, url: str, offset: int) -> int:
        status = getattr(resp, "status", None)
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start != offset:
                self._restart()
                raise _Transient(f"server resumed at byte {start}, not {offset}")
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                self._restart()  # range ignored (200) or not HTTP: start over
            offset = 0
            total = length
        expected = self.remote.size
        if expected is not None and total is not None and total != expected:
            raise BenchError(
                f"{url}: the server offers {total} bytes but the registry records {expected} "
                f"for {self.remote.filename}; the file changed upstream or the URL is wrong"
            )
        total = expected if expected is not None else total
        if total is not None:
            free = _free_bytes(self.part.parent)
            if free < total - offset + DISK_MARGIN:
                raise BenchError(
                    f"not enough disk space in {self.part.parent} for {self.remote.filename}: "
                    f"needs {_human(total - offset)}, {_human(free)} free"
                )
        etag = resp.headers.get("ETag")  # If-Range needs a strong validator
        validator = etag if etag and not etag.startswith("W/") else resp.headers.get(
            "Last-Modified")
        self.part_meta.write_text(json.dumps({"url": url, "validator": validator}))
        if offset:
            self._catch_up_hash()
        else:
            self.hasher, self.hashed = hashlib.sha256(), 0
        if self.task is None:
            self.task = self.progress.add_task(self.remote.filename, total=total,
                                               completed=offset)
        else:
            self.progress.update(self.task, total=total, completed=offset)
        size = offset
        with open(self.part, "ab" if offset else "wb") as f:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection lost after {size} bytes "
                                     f"({type(exc).__name__})") from exc
                if not chunk:
                    break
                try:
                    _append(f, chunk)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        raise BenchError(
                            f"disk full while writing {self.part} ({_human(size)} written); "
                            "free some space and run again to resume"
                        ) from exc
                    raise
                self.hasher.update(chunk)
                size += len(chunk)
                self.hashed = size
                self.progress.update(self.task, completed=size)
        if total is not None and size < total:
            raise _Transient(f"connection closed after {size} of {total} bytes")
        return size


def _content_range(value: str) -> tuple[int | None, int | None]:
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value.strip())
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) != "*" else None)


def _content_range_total(value: str) -> int | None:
    m = re.match(r"bytes\s+\*/(\d+)", value.strip())
    return int(m.group(1)) if m else None


def _make_progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)


def _reuse_complete(remote: RemoteFile, dest: Path, meta_path: Path) -> Fetched | None:
    """A finished download from an earlier run (e.g. unpacking was interrupted)."""
    meta = _read_json(meta_path)
    if not dest.exists() or not meta:
        return None
    size = dest.stat().st_size
    want_sha = remote.sha256 or meta.get("sha256")
    if size != (remote.size if remote.size is not None else meta.get("size")):
        return None
    if want_sha is None or _sha256_file(dest) != want_sha:
        return None
    return Fetched(dest, str(meta.get("url", "")), size, want_sha,
                   verified=remote.sha256 is not None, reused=True)


def fetch_file(remote: RemoteFile, dest: Path, *, progress: bool = True, retries: int = 5,
               timeout: float = 60.0, backoff: float = 1.0) -> Fetched:
    """Make ``dest`` a complete, verified copy of ``remote``; return what was fetched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    meta_path = dest.with_name(dest.name + ".json")
    reused = _reuse_complete(remote, dest, meta_path)
    if reused is not None:
        return reused
    dest.unlink(missing_ok=True)
    with _make_progress(progress) as bar:
        job = _Download(remote, dest, bar, timeout)
        size, url = _fetch_any_url(job, retries, backoff)
    sha = job.hasher.hexdigest() if job.hashed == size else _sha256_file(job.part)
    if remote.sha256 is not None and sha != remote.sha256.lower():
        aside = dest.with_name(dest.name + ".sha256-mismatch")
        os.replace(job.part, aside)
        job.part_meta.unlink(missing_ok=True)
        raise ChecksumError(
            f"{remote.filename} from {url}: SHA-256 {sha} does not match the recorded "
            f"{remote.sha256}; the file is kept aside at {aside} and not used"
        )
    meta_path.write_text(json.dumps({"url": url, "size": size, "sha256": sha}))
    os.replace(job.part, dest)
    job.part_meta.unlink(missing_ok=True)
    return Fetched(dest, url, size, sha, verified=remote.sha256 is not None, reused=False)


def _fetch_any_url(job: _Download, retries: int, backoff: float) -> tuple[int, str]:
    failures: list[str] = []
    for url in job.remote.urls:
        attempt = 0
        while True:
            try:
                return job.attempt(url), url
            except _Unavailable as exc:
                failures.append(f"{url}: {exc}")
                break
            except _Transient as exc:
                attempt += 1
                if attempt > retries:
                    kept = job.part.stat().st_size if job.part.exists() else 0
                    resume = ("run the same command again to resume" if url.startswith("http")
                              else "FTP cannot resume: the next run starts over")
                    raise BenchError(
                        f"download of {job.remote.filename} from {url} failed after "
                        f"{retries + 1} attempts: {exc}; {_human(kept)} kept in {job.part}, "
                        f"{resume}"
                    ) from exc
                with contextlib.suppress(Exception):
                    job.progress.console.print(f"[yellow]{job.remote.filename}[/]: {exc}; "
                                               f"retrying ({attempt}/{retries})")
                time.sleep(min(backoff * 2 ** (attempt - 1), 30.0))
    unreachable = all("HTTP" not in f for f in failures)
    hint = " (no network?)" if unreachable else ""
    raise BenchError(f"cannot download {job.remote.filename}{hint}: " + "; ".join(failures))
