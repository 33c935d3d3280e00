"""`bench datasets download|info|list` and `bench weights download|list`. Thin: parse, call, print.

The three dataset commands are exported one by one (``download_cmd``, ``info_cmd``,
``list_cmd``) so they can join the ``datasets`` group that also holds
``prepare memes``; ``add_commands`` does exactly that. ``weights`` is a group.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bench.core.errors import BenchError
from bench.datasets.download.install import (
    InstallOptions,
    install_dataset,
    install_weights,
    status_of,
)
from bench.datasets.download.manifest import get_entry
from bench.datasets.download.registry import (
    DATASETS,
    MANUAL_DATASETS,
    WEIGHTS,
    DownloadableDataset,
    ManualDataset,
    RemoteFile,
    get_dataset,
    get_weights,
)

out = Console()


def _data_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="BENCH_DATA",
        default="data", show_default=True, show_envvar=True,
        help="Data directory (the experiments' ${BENCH_DATA}).",
    )(f)


def _transfer_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--force", is_flag=True,
                     help="Download again and replace, even when present or not ours."),
        click.option("--keep-archives", is_flag=True,
                     help="Keep the downloaded archives under <data>/.downloads."),
        click.option("--retries", type=click.IntRange(0), default=5, show_default=True,
                     help="Resume attempts per file after a dropped connection."),
        click.option("--timeout", type=click.FloatRange(1), default=60.0, show_default=True,
                     help="Seconds without data before a connection counts as dropped."),
        click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI)."),
    )):
        f = option(f)
    return f


def _options(force: bool, keep_archives: bool, retries: int, timeout: float,
             no_progress: bool) -> InstallOptions:
    return InstallOptions(force=force, keep_archives=keep_archives, progress=not no_progress,
                          retries=retries, timeout=timeout)


def _say(text: str) -> None:
    out.print(text, highlight=False, soft_wrap=True)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return str(n)


@click.command("download")
@click.argument("names", nargs=-1, required=True)
@_data_dir_option
@_transfer_options
def download_cmd(names: tuple[str, ...], data_dir: Path, **transfer: Any) -> None:
    """Download datasets NAMES (e.g. bsds500 mirflickr-500k sift-128-euclidean).

    Interrupted downloads resume; present and valid datasets are not fetched again.
    `bench datasets list` shows the names.
    """
    sources = [get_dataset(n) for n in names]
    manual = [s.name for s in sources if isinstance(s, ManualDataset)]
    if manual:
        raise BenchError(f"{', '.join(manual)}: needs an account or a licence acceptance and "
                         f"cannot be downloaded here; see `bench datasets info {manual[0]}`")
    options = _options(**transfer)
    for source in sources:
        assert isinstance(source, DownloadableDataset)
        result = install_dataset(source, data_dir, options)
        for warning in result.warnings:
            _say(f"[yellow]warning:[/] {warning}")
        verb = "already present" if result.status == "present" else "installed"
        _say(f"[bold]{source.name}[/] {verb}: {result.target} "
                  f"({result.files_count:,} files, {_size(result.total_bytes)})")


def _remote_lines(files: tuple[RemoteFile, ...]) -> list[str]:
    lines = []
    for f in files:
        sha = f.sha256 or "not recorded (the SHA-256 of the download goes to the manifest)"
        lines.append(f"  {f.filename}: {' | '.join(f.urls)}\n"
                     f"    size {_size(f.size)}, sha256 {sha}")
    return lines


@click.command("info")
@click.argument("name")
@_data_dir_option
def info_cmd(name: str, data_dir: Path) -> None:
    """Where dataset NAME comes from, its layout under the data directory, how to use it."""
    source = get_dataset(name)
    if isinstance(source, ManualDataset):
        _say(f"[bold]{source.name}[/]: {source.title}")
        _say(f"get it:   {source.where}")
        _say(f"layout:   ${{BENCH_DATA}}/{source.layout}")
        _say(f"prepare:  {source.prepare}")
        return
    _say(f"[bold]{source.name}[/]: {source.title}")
    if source.homepage:
        _say(f"homepage: {source.homepage}")
    _say("files:\n" + "\n".join(_remote_lines(source.files)))
    _say(f"layout:   {data_dir}/{source.layout}")
    _say(f"use:      {source.usage}")
    if source.licence:
        _say(f"licence:  {source.licence}")
    _say(f"status:   {status_of(source, data_dir)}")
    entry = get_entry(data_dir, source.name) if data_dir.exists() else None
    if entry:
        for s in entry.get("sources", []):
            checked = "verified" if s.get("sha256_verified") else "recorded"
            _say(f"  {s['filename']} from {s['url']} on {s['downloaded_at']}, "
                      f"sha256 {s['sha256']} ({checked})")


@click.command("list")
@_data_dir_option
def list_cmd(data_dir: Path) -> None:
    """Datasets that can be downloaded (and whether they are present) or fetched by hand."""
    table = Table(title=f"datasets ({data_dir})")
    for col in ("name", "group", "status", "size", "where"):
        table.add_column(col)
    for source in DATASETS.values():
        status = status_of(source, data_dir)
        entry = get_entry(data_dir, source.name) if status == "present" else None
        size = _size(entry["total_bytes"]) if entry else _size(
            sum(f.size for f in source.files) if all(f.size for f in source.files) else None)
        style = {"present": "green", "absent": "dim"}.get(status, "yellow")
        table.add_row(source.name, source.group, f"[{style}]{status}[/]", size, source.target)
    for manual in MANUAL_DATASETS.values():
        table.add_row(manual.name, "manual", "[dim]by hand[/]", "",
                      f"bench datasets info {manual.name}")
    out.print(table)


@click.group("weights")
def weights() -> None:
    """Pretrained checkpoints: download and convert to .pt state dicts."""


@weights.command("download")
@click.argument("family", type=click.Choice(sorted({f for f, _ in WEIGHTS})))
@click.argument("variants", nargs=-1, required=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the .pt file (one variant only); default "
                   "<data>/weights/<extractor name>.pt.")
@_data_dir_option
@_transfer_options
def weights_download_cmd(family: str, variants: tuple[str, ...], out_path: Path | None,
                         data_dir: Path, **transfer: Any) -> None:
    """Download SimCLR checkpoints (simclr-v1 1x|2x|4x, simclr-v2 r50_1x_sk0 ... r152_3x_sk1)
    and convert each to the .pt file the matching extractor loads."""
    chosen = [get_weights(family, v) for v in variants]
    if out_path is not None and len(chosen) > 1:
        raise BenchError("--out: give one variant at a time")
    options = _options(**transfer)
    for w in chosen:
        result = install_weights(w, data_dir, options, out=out_path)
        verb = "already present" if result.status == "present" else "ready"
        _say(f"[bold]{w.name}[/] {verb}: {result.converted} "
                  f"(TensorFlow checkpoint in {result.target})")


@weights.command("list")
@_data_dir_option
def weights_list_cmd(data_dir: Path) -> None:
    """Checkpoints that can be downloaded and whether they are present."""
    table = Table(title=f"weights ({data_dir})")
    for col in ("family", "variant", "extractor", "checkpoint", ".pt"):
        table.add_column(col)
    for w in WEIGHTS.values():
        pt = (data_dir / w.output).exists()
        table.add_row(w.family, w.variant, w.name, status_of(w, data_dir),
                      "yes" if pt else "no")
    out.print(table)


def add_commands(datasets_group: click.Group, cli_group: click.Group | None = None) -> None:
    """Add download/info/list to an existing ``datasets`` group (and ``weights`` to the CLI)."""
    for cmd in (download_cmd, info_cmd, list_cmd):
        datasets_group.add_command(cmd)
    if cli_group is not None:
        cli_group.add_command(weights)
