"""`bench attacks` and `bench datasets prepare memes`. Thin: parse, call, print.

``attacks`` is a top-level command; ``prepare`` is a group meant for the
existing ``datasets`` group. ``add_commands`` wires both.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

console = Console(stderr=True)


@click.command("attacks")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random attacks (noise, text); same seed, same bytes.")
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.option("--only", "only", multiple=True, metavar="ATTACK",
              help="Write only this attack (repeatable); default: all 58.")
@click.option("--skip-existing", is_flag=True, help="Keep outputs already in DST (resume).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def attacks(src: Path, dst: Path, seed: int, workers: int | None, only: tuple[str, ...],
            skip_existing: bool, no_progress: bool) -> None:
    """Write the 58 attacks of every image under SRC as DST/<stem>_<attack>.png."""
    import os

    from bench.datasets.prepare.attacks import ATTACK_NAMES, write_attacks

    report = write_attacks(src, dst, seed, workers or os.cpu_count() or 1, not no_progress,
                           attacks=only or ATTACK_NAMES, overwrite=not skip_existing)
    for path, reason in report.skipped:
        console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
    console.print(f"[bold green]wrote[/] {report.written} files for {report.images} images "
                  f"into {dst} ({len(report.skipped)} unreadable)")


@click.group("prepare")
def prepare() -> None:
    """Turn downloaded data into the folders the datasets read."""


@prepare.command("memes")
@click.argument("csv_path", metavar="CSV", type=click.Path(path_type=Path))
@click.argument("images", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--id-column", default=None, help="CSV column of the image stem (default: 1st).")
@click.option("--template-column", default=None,
              help="CSV column of the template name (default: 2nd).")
@click.option("--clean", is_flag=True,
              help="The study's clean subset: drop the 8 templates whose memes are not "
                   "copies of the template.")
@click.option("--no-label-fix", is_flag=True,
              help="Keep the mislabelled post EQKrGAq_imgr under its CSV template.")
def prepare_memes_cmd(csv_path: Path, images: Path, out: Path, id_column: str | None,
                      template_column: str | None, clean: bool, no_label_fix: bool) -> None:
    """Copy Kaggle memes into OUT/templates/ and OUT/memes/ (the input is not modified)."""
    from bench.datasets.prepare.memes import prepare_memes

    report = prepare_memes(csv_path, images, out, id_column=id_column,
                           template_column=template_column, clean=clean,
                           fix_labels=not no_label_fix)
    for what in report.relabelled:
        console.print(f"relabelled {what}", highlight=False)
    if clean:
        console.print(f"clean subset: dropped {len(report.dropped)} templates "
                      f"({', '.join(report.dropped) or 'none present'})", highlight=False)
    console.print(
        f"[bold green]prepared[/] {out}: {report.templates} templates, {report.memes} memes; "
        f"{len(report.missing)} CSV rows without an image, {report.unlisted} images not in "
        f"the CSV, {len(report.duplicates)} duplicates ignored"
    )


def add_commands(datasets_group: click.Group, cli_group: click.Group) -> None:
    """`bench attacks` on the CLI and `prepare` under `bench datasets`."""
    cli_group.add_command(attacks)
    datasets_group.add_command(prepare)
