"""`bench datasets prepare memes`: Kaggle reddit memes -> templates/ and memes/ folders.

The Kaggle download has ``reddit_posts.csv`` (one row per post: the image's file
stem, then its template name) and a folder of images named ``<stem>.<ext>``.
The layout the `memes` dataset reads is::

    OUT/templates/<template>.<ext>          one image per template (database)
    OUT/memes/<template>_<stem>.<ext>       every other post (queries)

The template image is the first post of that template, in CSV order, whose
image exists; it is not repeated among the memes (it would be a trivial query).
Identities come from the text before the first ``_``, so ``_`` in template names
and stems becomes ``-``, as do characters unsafe in file names.

The input is never modified: files are copied (atomically, skipped when an
identical-size copy is already there), so the command is deterministic and
can be re-run.

Two corrections of the original study (docs/study-reference.md, "Memes"):

- one mislabelled post, ``EQKrGAq_imgr``, is a Bad Luck Brian meme: it is relabelled
  before templates are chosen, so the template its wrong label made from it is gone
  (``fix_labels``, on by default);
- the "clean" subset (``clean``) drops the templates whose memes are not perceptually
  identical copies of the template, with all their memes.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import BenchError
from bench.datasets.images import iter_images, natural_key

logger = logging.getLogger(__name__)

#: post stem -> its true template (the study's fix; compared after safe_name, any case)
MISLABELLED = {"EQKrGAq_imgr": "bad-luck-brian", "EQKrGAq": "bad-luck-brian"}
#: templates the study's clean subset drops, with all their memes
NOT_COPIES = ("zuckerberg", "harold", "netflix-adaptation", "shrek", "so-glad",
              "who-would-win", "you-vs-the-guy", "skyrim-100")


@dataclass
class MemesReport:
    templates: int = 0
    memes: int = 0
    missing: list[str] = field(default_factory=list)  # posts in the CSV without an image
    duplicates: list[str] = field(default_factory=list)  # rows or names seen twice, ignored
    unlisted: int = 0  # images not named in the CSV
    relabelled: list[str] = field(default_factory=list)  # "stem: old -> new"
    dropped: list[str] = field(default_factory=list)  # templates left out of the clean subset


def safe_name(text: str) -> str:
    """A file-name part without `_` (the identity separator) or unsafe characters."""
    return re.sub(r"[^\w.-]|_", "-", text.strip()).strip(".") or "unnamed"


def _column(header: list[str], wanted: str | None, default: int, csv_path: Path) -> int:
    if wanted is None:
        if len(header) <= default:
            raise BenchError(f"{csv_path}: expected at least {default + 1} columns, "
                             f"got {len(header)}")
        return default
    if wanted not in header:
        raise BenchError(f"{csv_path}: no column {wanted!r}; columns: {', '.join(header)}")
    return header.index(wanted)


def _copy(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def prepare_memes(csv_path: Path | str, images_dir: Path | str, out_dir: Path | str, *,
                  id_column: str | None = None, template_column: str | None = None,
                  clean: bool = False, fix_labels: bool = True) -> MemesReport:
    """Copy the Kaggle images into OUT/templates and OUT/memes (see the module doc)."""
    csv_path, images_dir, out_dir = Path(csv_path), Path(images_dir), Path(out_dir)
    if not csv_path.is_file():
        raise BenchError(f"memes: CSV file {csv_path} does not exist")
    if not images_dir.is_dir():
        raise BenchError(f"memes: image folder {images_dir} does not exist")
    out_abs, img_abs = out_dir.resolve(), images_dir.resolve()
    if out_abs == img_abs or img_abs in out_abs.parents:
        raise BenchError(f"memes: output {out_dir} is inside the input {images_dir}; "
                         "choose a folder outside it (the input is never modified)")

    by_stem: dict[str, Path] = {}
    report = MemesReport()
    for path in iter_images(images_dir):
        if path.stem in by_stem:
            report.duplicates.append(f"image {path} (same stem as {by_stem[path.stem]})")
            continue
        by_stem[path.stem] = path

    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise BenchError(f"memes: {csv_path} is empty")
    header = rows[0]
    id_col = _column(header, id_column, 0, csv_path)
    tpl_col = _column(header, template_column, 1, csv_path)

    plan: dict[Path, Path] = {}  # destination -> source, in CSV order
    templates: dict[str, Path] = {}
    used: set[str] = set()
    named: set[Path] = set()  # images the CSV names (kept or dropped by the clean subset)
    spelling = {safe_name(r[tpl_col]).lower(): safe_name(r[tpl_col]) for r in rows[1:]
                if len(r) > tpl_col}
    dropped = {safe_name(t).lower() for t in NOT_COPIES} if clean else set()
    posts: list[tuple[int, str, str, Path, bool]] = []  # line, stem, template, image, fixed
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= max(id_col, tpl_col) or not row[id_col].strip():
            continue
        stem, template = row[id_col].strip(), safe_name(row[tpl_col])
        true = MISLABELLED.get(stem) if fix_labels else None
        fixed = true is not None and safe_name(true).lower() != template.lower()
        if fixed:
            relabel = spelling.get(safe_name(true).lower(), safe_name(true))
            report.relabelled.append(f"{stem}: {template} -> {relabel}")
            template = relabel
        if stem in used:
            report.duplicates.append(f"row {line}: post {stem} listed again")
            continue
        used.add(stem)
        src = by_stem.get(stem) or by_stem.get(stem.replace("?", ""))
        if src is None:
            report.missing.append(stem)
            continue
        named.add(src)
        if template.lower() in dropped:
            if template not in report.dropped:
                report.dropped.append(template)
            continue
        posts.append((line, stem, template, src, fixed))
    # relabelled posts are placed last: a post under its true template is one of its memes,
    # never the template image (that is what the study's fix did)
    for line, stem, template, src, _ in sorted(posts, key=lambda p: p[4]):
        if template not in templates:
            templates[template] = src
            plan[out_dir / "templates" / f"{template}{src.suffix.lower()}"] = src
            continue
        dst = out_dir / "memes" / f"{template}_{safe_name(stem)}{src.suffix.lower()}"
        if dst in plan:
            report.duplicates.append(f"row {line}: {dst.name} already taken")
            continue
        plan[dst] = src
    if not templates:
        raise BenchError(f"memes: no row of {csv_path} names an image found in {images_dir}")

    (out_dir / "templates").mkdir(parents=True, exist_ok=True)
    (out_dir / "memes").mkdir(parents=True, exist_ok=True)
    for dst in sorted(plan, key=lambda p: natural_key(p.as_posix())):
        _copy(plan[dst], dst)
    report.templates = len(templates)
    report.memes = len(plan) - len(templates)
    report.unlisted = len(set(by_stem.values()) - named)
    for what in report.duplicates:
        logger.warning("memes: ignored %s", what)
    if report.missing:
        logger.warning("memes: %d posts of the CSV have no image, e.g. %s",
                       len(report.missing), report.missing[0])
    return report
