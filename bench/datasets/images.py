"""Image collections: any folder, BSDS500, Kaggle memes, MIRFLICKR distractors, and
`copy-detection`, which composes a database from a main set plus distractors.

Ids and identities are namespaced by dataset (``bsds:100075``, ``flickr:12``):
the original study's numeric BSDS ids collided with Flickr file numbers, which
silently turned distractors into "correct" answers. Folders are listed
recursively in natural order (``2.jpg`` before ``10.jpg``), so listings and
``limit`` are deterministic. Files are listed by extension only; corrupt or
empty ones are skipped (and reported) by the feature store, not here.

Paths in options resolve against the experiment file's folder; a dataset whose
folder is not given looks under ``BENCH_DATA`` (e.g. ``$BENCH_DATA/bsds500``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.core.errors import BenchError
from bench.core.items import Item
from bench.core.options import StrictOptions, validate_section
from bench.datasets import register
from bench.datasets.base import Dataset, ItemData
from bench.datasets.prepare.attacks import IMAGE_SUFFIXES, family_of

IdentityRule = Literal["stem", "prefix", "parent", "none"]


def natural_key(name: str) -> tuple[Any, ...]:
    """Numbers compare as numbers: 2.jpg < 10.jpg; text parts compare as text."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in re.split(r"(\d+)", name) if t)


def iter_images(folder: Path, limit: int | None = None) -> Iterator[Path]:
    """Image files under folder, depth first in natural order; stops after ``limit``.

    Linked folders are followed once: a folder reached again (a symlink loop, or two
    links to one folder) is skipped, so a loop can neither hang the walk nor list the
    same image under endless paths.
    """
    count = 0
    seen: set[tuple[int, int]] = set()

    def walk(path: Path) -> Iterator[Path]:
        nonlocal count
        try:
            info = path.stat()
        except OSError as exc:
            raise BenchError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: natural_key(e.name))
        for e in entries:
            if limit is not None and count >= limit:
                return
            if e.is_dir():
                yield from walk(Path(e.path))
            elif e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                count += 1
                yield Path(e.path)

    yield from walk(folder)


def split_identity(stem: str) -> tuple[str, str | None]:
    """``100075_gaussian_noise_0.01`` -> (``100075``, ``gaussian_noise_0.01``)."""
    head, sep, rest = stem.partition("_")
    return head, (rest if sep else None)


def folder_items(folder: Path, namespace: str, identity: IdentityRule, *,
                 ids: Literal["path", "stem"] = "path", limit: int | None = None,
                 what: str = "images") -> list[Item]:
    """Items of every image under folder; attack attrs when identity is ``prefix``."""
    if not folder.is_dir():
        raise BenchError(f"{what}: folder {folder} does not exist")
    items: list[Item] = []
    seen: dict[str, Path] = {}
    for path in iter_images(folder, limit):
        rel = path.relative_to(folder)
        key = path.stem if ids == "stem" else rel.with_suffix("").as_posix()
        item_id = f"{namespace}:{key}"
        if item_id in seen:
            raise BenchError(
                f"{what}: {seen[item_id]} and {path} both give the item id {item_id!r}; "
                "rename one of them"
            )
        seen[item_id] = path
        attrs: dict[str, Any] = {}
        if identity == "stem":
            ident: str | None = f"{namespace}:{path.stem}"
        elif identity == "prefix":
            head, attack = split_identity(path.stem)
            ident = f"{namespace}:{head}"
            if attack is not None:
                attrs = {"attack": attack, "family": family_of(attack)}
        elif identity == "parent":
            ident = f"{namespace}:{rel.parent.as_posix()}"
        else:
            ident = None
        items.append(Item(id=item_id, identity=ident, path=path, attrs=attrs))
    if not items:
        raise BenchError(
            f"{what}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}"
        )
    return items


def listing_fingerprint(items: list[Item]) -> str:
    """Ids and paths; the feature store adds sizes and mtimes when it keys its cache."""
    h = hashlib.blake2b(digest_size=16)
    for item in items:
        h.update(f"{item.id}|{item.identity}|{item.path}\n".encode())
    return h.hexdigest()


def describe(name: str, database: list[Item], queries: list[Item],
             **extra: Any) -> dict[str, Any]:
    return {"dataset": name, "n_database": len(database), "n_queries": len(queries),
            "fingerprint": listing_fingerprint(database + queries), **extra}


class _FolderDataset(Dataset):
    """Path handling shared by the image datasets."""

    default_folder = ""

    def folder(self, value: str | None, *parts: str, field: str) -> Path:
        if value is not None:
            return self.resolve(value)
        root = getattr(self.options, "root", None)
        if root is not None:
            return self.resolve(root).joinpath(*parts)
        if self.context.data_root is None:
            raise BenchError(
                f"dataset {self.registered_name}: set `{field}:` (or `root:`) or the "
                f"BENCH_DATA environment variable (then {self.default_folder}/"
                f"{'/'.join(parts)} under it is used)"
            )
        return self.context.data_root.joinpath(self.default_folder, *parts)


class ImageFolderOptions(StrictOptions):
    path: str = Field(description="folder of database images (searched recursively)")
    queries: str | None = Field(None, description="folder of query images")
    identity: IdentityRule = "stem"
    query_identity: IdentityRule = "prefix"
    namespace: str = "folder"
    limit: int | None = Field(None, ge=1, description="first N database images")
    n_queries: int | None = Field(
        None, ge=1, description="without `queries`: hold out a seeded sample of N images")


@register("image-folder")
class ImageFolder(_FolderDataset):
    """Any folder of images; queries from a second folder or held out from the first."""

    Options = ImageFolderOptions
    description = "any folder of images (recursive), identity from file names"

    def load(self) -> ItemData:
        o: ImageFolderOptions = self.options  # type: ignore[assignment]
        what = f"dataset {self.registered_name}"
        db = folder_items(self.resolve(o.path), o.namespace, o.identity, limit=o.limit,
                          what=f"{what} path")
        if o.queries is not None:
            queries = folder_items(self.resolve(o.queries), o.namespace, o.query_identity,
                                   what=f"{what} queries")
        elif o.n_queries is not None:
            import numpy as np

            if o.n_queries >= len(db):
                raise BenchError(
                    f"{what}: n_queries {o.n_queries} leaves no database ({len(db)} images)"
                )
            rng = np.random.default_rng(self.context.seed)
            picked = set(rng.choice(len(db), o.n_queries, replace=False).tolist())
            queries = [it for i, it in enumerate(db) if i in picked]
            db = [it for i, it in enumerate(db) if i not in picked]
        else:
            queries = []
        return ItemData(db, queries, description=describe(self.registered_name, db, queries))


class Bsds500Options(StrictOptions):
    root: str | None = Field(None, description="folder holding original/ and attacks/")
    original: str | None = None
    attacks: str | None = None
    n_originals: int | None = Field(None, ge=1, description="first N originals and their attacks")
    namespace: str = "bsds"


@register("bsds500")
class Bsds500(_FolderDataset):
    """BSDS500 originals (database) and their generated attacks (queries).

    original/<id>.jpg has identity <id>; attacks/<id>_<attack>.png (made with
    `bench attacks original attacks`) has identity <id>.
    """

    Options = Bsds500Options
    description = "BSDS500 originals + `bench attacks` outputs as queries"
    default_folder = "bsds500"

    def load(self) -> ItemData:
        o: Bsds500Options = self.options  # type: ignore[assignment]
        what = f"dataset {self.registered_name}"
        originals = folder_items(self.folder(o.original, "original", field="original"),
                                 o.namespace, "stem", ids="stem", limit=o.n_originals,
                                 what=f"{what} original")
        attacks = folder_items(self.folder(o.attacks, "attacks", field="attacks"),
                               o.namespace, "prefix", ids="stem", what=f"{what} attacks")
        if o.n_originals is not None:
            keep = {it.identity for it in originals}
            attacks = [it for it in attacks if it.identity in keep]
        if not attacks:
            raise BenchError(f"{what}: no attack image matches an original's identity")
        return ItemData(originals, attacks,
                        description=describe(self.registered_name, originals, attacks))


class MemesOptions(StrictOptions):
    root: str | None = Field(None, description="output folder of `bench datasets prepare memes`")
    templates: str | None = None
    memes: str | None = None
    namespace: str = "memes"


@register("memes")
class Memes(_FolderDataset):
    """Kaggle memes: templates/<template>.<ext> (database), memes/<template>_<post>.<ext>."""

    Options = MemesOptions
    description = "Kaggle meme templates (database) and memes (queries)"
    default_folder = "memes"

    def load(self) -> ItemData:
        o: MemesOptions = self.options  # type: ignore[assignment]
        what = f"dataset {self.registered_name}"
        templates = folder_items(self.folder(o.templates, "templates", field="templates"),
                                 o.namespace, "stem", ids="stem", what=f"{what} templates")
        memes = folder_items(self.folder(o.memes, "memes", field="memes"), o.namespace,
                             "prefix", ids="stem", what=f"{what} memes")
        for item in memes:  # a meme is not an attack; keep the template as its group
            item.attrs = {"template": item.identity}
        return ItemData(templates, memes,
                        description=describe(self.registered_name, templates, memes))


class FlickrOptions(StrictOptions):
    root: str | None = Field(None, description="MIRFLICKR folder with 0/ .. 49/ of <N>.jpg")
    limit: int | None = Field(None, ge=1, description="first N images in natural order")
    namespace: str = "flickr"


@register("flickr")
class Flickr(_FolderDataset):
    """MIRFLICKR-1M images as distractors: a database and no queries."""

    Options = FlickrOptions
    description = "MIRFLICKR-1M distractors (database only)"
    default_folder = "mirflickr"

    def load(self) -> ItemData:
        o: FlickrOptions = self.options  # type: ignore[assignment]
        items = folder_items(self.folder(None, field="root"), o.namespace, "stem", ids="stem",
                             limit=o.limit, what=f"dataset {self.registered_name}")
        return ItemData(items, [], description=describe(self.registered_name, items, []))


class SubDataset(BaseModel):
    """A nested dataset section: a name and that dataset's own options."""

    model_config = ConfigDict(extra="allow")
    name: str


class CopyDetectionOptions(StrictOptions):
    main: SubDataset = Field(description="its database (and queries, unless `queries` is set)")
    distractors: list[SubDataset] = Field(default_factory=list)
    queries: SubDataset | None = Field(None, description="take the queries from this dataset")


def load_sub(section: SubDataset, where: str, context: Any) -> ItemData:
    from bench.datasets import registry

    cls = registry.get(section.name)
    options = validate_section(cls.Options, dict(section.model_extra or {}),
                               f"{where} ({section.name})")
    data = cls(options, context).load()
    if not isinstance(data, ItemData):
        raise BenchError(f"{where}: dataset {section.name} yields vectors, not items")
    return data


@register("copy-detection")
class CopyDetection(Dataset):
    """Database = main + distractors; queries from main or another dataset."""

    Options = CopyDetectionOptions
    description = "compose main + distractor databases with a query set"

    def load(self) -> ItemData:
        o: CopyDetectionOptions = self.options  # type: ignore[assignment]
        main = load_sub(o.main, "dataset.main", self.context)
        parts = [main.database]
        descriptions: dict[str, Any] = {"main": main.description, "distractors": []}
        for i, section in enumerate(o.distractors):
            sub = load_sub(section, f"dataset.distractors[{i}]", self.context)
            if not sub.database:
                raise BenchError(f"dataset.distractors[{i}] ({section.name}) has no images")
            parts.append(sub.database)
            descriptions["distractors"].append(sub.description)
        if o.queries is not None:
            qdata = load_sub(o.queries, "dataset.queries", self.context)
            descriptions["queries"] = qdata.description
            queries = qdata.queries
        else:
            queries = main.queries
        if not queries:
            raise BenchError("dataset: no query items (main yields none and `queries` is unset)")
        database = [item for part in parts for item in part]
        self._check(database, queries, len(main.database))
        return ItemData(database, queries, description={
            **describe(self.registered_name, database, queries), **descriptions})

    @staticmethod
    def _check(database: list[Item], queries: list[Item], n_main: int) -> None:
        seen: set[str] = set()
        for item in database:
            if item.id in seen:
                raise BenchError(
                    f"dataset: item id {item.id!r} appears twice in the database; give the "
                    "datasets different `namespace:` values"
                )
            seen.add(item.id)
        taken = {it.identity for it in queries} | {it.identity for it in database[:n_main]}
        for item in database[n_main:]:
            if item.identity is not None and item.identity in taken:
                raise BenchError(
                    f"dataset: distractor {item.id} has identity {item.identity!r}, which a "
                    "query or main item also has; give the distractors their own `namespace:`"
                )
