"""Copy-detection benchmarks of the field: DISC21 (ISC 2021) and Copydays.

DISC21: references ``R000000.jpg`` .., queries ``Q00000.jpg`` .. (dev: Q00000-Q49999,
final: Q50000-Q99999), training ``T000000.jpg`` .., and a ground-truth CSV of
``query_id,reference_id`` rows where an empty reference id marks a query without a
match (most of them). Folder names differ between the 2021 challenge release
(``reference_images``, ``query_images``, ``training_images``, ``public_ground_truth.csv``:
the public 25K dev subset with 4,991 true pairs) and the later DISC21 release
(``references``, ``dev_queries`` / ``final_queries``, ``train``, ``dev_ground_truth.csv`` /
``final_ground_truth.csv``); both are found under ``root``, or name each folder.
A query's identity is its reference (``disc21:R000123``); a query without one gets an
identity of its own, so it is a negative of the pooled metrics and left out of the
hit rate. Training images form the ``background:`` set (score normalisation,
post-processing), never the database.

Copydays (INRIA Holidays' copy-detection set): ``original/`` (157 images, the
database), ``strong/`` (229), ``jpegqual/<q>/`` and ``crops/<p>/`` (157 each). Every
file's identity is the first four characters of its name (the original's series),
as SSCD evaluates it; each query carries its block (``attack``: ``jpegqual/50``) and
``family`` (``strong`` / ``jpegqual`` / ``crops``), so results break down per block.
The "+10K distractors" setting adds any folder of images to the database.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from pydantic import Field

from bench.core.errors import BenchError
from bench.core.items import Item
from bench.core.options import StrictOptions
from bench.datasets import register
from bench.datasets.base import ItemData
from bench.datasets.images import _FolderDataset, describe, folder_items, natural_key

DISC_FOLDERS = {
    "references": ("references", "reference_images", "refs"),
    "dev": ("dev_queries", "query_images", "queries"),
    "final": ("final_queries",),
    "training": ("train", "training", "training_images"),
}
DISC_TRUTH = {"dev": ("dev_ground_truth.csv", "public_ground_truth.csv"),
              "final": ("final_ground_truth.csv",)}


def read_disc_truth(path: Path) -> dict[str, str | None]:
    """{query id: reference id or None} from a DISC21 ground-truth CSV (header optional)."""
    if not path.is_file():
        raise BenchError(f"disc21 ground truth: {path} not found")
    truth: dict[str, str | None] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a BOM is not an id
        for line, row in enumerate(csv.reader(fh), 1):
            if not row or (line == 1 and row[0].strip() == "query_id"):
                continue
            if len(row) != 2 or not row[0].strip():
                raise BenchError(f"{path}:{line}: expected 'query_id,reference_id' "
                                 "(reference id empty for a query without a match)")
            q, r = row[0].strip(), row[1].strip() or None
            if truth.get(q) is not None and r is not None and truth[q] != r:
                raise BenchError(f"{path}:{line}: query {q} has two references ({truth[q]}, "
                                 f"{r}); identity relevance needs one (use relevance groups)")
            truth[q] = r if r is not None else truth.get(q)
    if not truth:
        raise BenchError(f"{path}: no ground-truth rows")
    return truth


class Disc21Options(StrictOptions):
    root: str | None = Field(None, description="folder holding the DISC21 folders and CSVs")
    references: str | None = None
    queries: str | None = None
    training_folder: str | None = None
    ground_truth: str | None = Field(None, description="CSV query_id,reference_id")
    split: Literal["dev", "final"] = "dev"
    subset: Literal["ground_truth", "all"] = Field("ground_truth", description=(
        "ground_truth: only queries the CSV lists (public_ground_truth.csv = the 25K "
        "public subset); all: every query image, unlisted ones as negatives"))
    n_queries: int | None = Field(None, ge=1, description="first N queries (after subset)")
    n_references: int | None = Field(None, ge=0, description=(
        "references besides the true matches of the chosen queries (first N); default all"))
    background: int = Field(0, ge=0, description="first N training images as background set")
    training: int = Field(0, ge=0, description=(
        "the next N training images (after the background ones): fit post-processing only"))
    namespace: str = "disc21"


@register("disc21")
class Disc21(_FolderDataset):
    """DISC21 / ISC 2021 descriptor track: references, dev or final queries, training."""

    Options = Disc21Options
    description = "DISC21 (ISC 2021): 1M references, 50K dev / final queries, training set"
    default_folder = "disc21"

    def _find(self, value: str | None, names: tuple[str, ...], field: str) -> Path:
        if value is not None:
            return self.resolve(value)
        base = self.folder(None, field=field)
        for name in names:
            if (base / name).exists():
                return base / name
        raise BenchError(f"dataset disc21: none of {', '.join(names)} under {base}; set "
                         f"`{field}:`")

    def load(self) -> ItemData:
        o: Disc21Options = self.options  # type: ignore[assignment]
        ns = o.namespace
        truth = read_disc_truth(self._find(o.ground_truth, DISC_TRUTH[o.split], "ground_truth"))
        q_dir = self._find(o.queries, DISC_FOLDERS[o.split], "queries")
        queries = folder_items(q_dir, ns, "none", ids="stem", what="disc21 queries")
        found = {q.id.split(":", 1)[1] for q in queries}
        missing = sorted(set(truth) - found)  # listed in the CSV, no image: recorded
        if o.subset == "ground_truth":
            queries = [q for q in queries if q.id.split(":", 1)[1] in truth]
            if not queries:
                raise BenchError(f"disc21: no query image in {q_dir} is listed in the ground "
                                 "truth")
        queries = queries[: o.n_queries] if o.n_queries else queries
        refs = folder_items(self._find(o.references, DISC_FOLDERS["references"], "references"),
                            ns, "stem", ids="stem", what="disc21 references")
        by_id = {r.id.split(":", 1)[1]: r for r in refs}
        wanted: set[str] = set()
        for q in queries:
            ref = truth.get(q.id.split(":", 1)[1])
            if ref is not None and ref not in by_id:
                raise BenchError(f"disc21: ground truth pairs {q.id} with {ref}, which is not "
                                 "among the reference images")
            stem = q.id.split(":", 1)[1]
            q.identity = f"{ns}:{ref}" if ref is not None else f"{ns}-query:{stem}"
            q.attrs = {"split": o.split, "positive": ref is not None}
            if ref is not None:
                wanted.add(ref)
        if o.n_references is not None:
            others = [r for r in refs if r.id.split(":", 1)[1] not in wanted][: o.n_references]
            keep = {r.id for r in others} | {f"{ns}:{w}" for w in wanted}
            refs = [r for r in refs if r.id in keep]
        background: list[Item] = []
        training: list[Item] = []
        if o.background or o.training:
            t_dir = self._find(o.training_folder, DISC_FOLDERS["training"], "training_folder")
            images = folder_items(t_dir, f"{ns}-training", "none", ids="stem",
                                  limit=o.background + o.training, what="disc21 training")
            background, training = images[: o.background], images[o.background:]
        return ItemData(refs, queries, background=background, training=training,
                        description=describe(
            self.registered_name, refs, queries, split=o.split, subset=o.subset,
            true_pairs=sum(1 for q in queries if q.attrs["positive"]),
            n_background=len(background), n_training=len(training),
            listed_queries_without_image=len(missing), first_missing=missing[:5]))


COPYDAYS_BLOCKS = ("strong", "jpegqual", "crops")


class CopydaysOptions(StrictOptions):
    root: str | None = Field(None, description="folder holding original/ strong/ jpegqual/ "
                                               "crops/")
    blocks: list[str] | None = Field(None, description=(
        "query blocks: strong, jpegqual, crops, or one sub-block such as jpegqual/50 "
        "(default: all three)"))
    distractors: str | None = Field(None, description="folder of distractor images "
                                                      "(the +10K setting)")
    n_distractors: int | None = Field(None, ge=1)
    prefix_chars: int = Field(4, ge=1, description="identity = the first N characters")
    namespace: str = "copydays"


@register("copydays")
class Copydays(_FolderDataset):
    """Copydays originals (database) and strong / jpeg / crop blocks (queries)."""

    Options = CopydaysOptions
    description = "Copydays: 157 originals; strong, jpeg-quality and crop blocks as queries"
    default_folder = "copydays"

    def load(self) -> ItemData:
        o: CopydaysOptions = self.options  # type: ignore[assignment]
        ns, n = o.namespace, o.prefix_chars
        root = self.folder(None, field="root")
        originals = folder_items(root / "original", ns, "none", ids="stem",
                                 what="copydays original")
        for it in originals:
            assert it.path is not None
            it.identity = f"{ns}:{it.path.stem[:n]}"
        blocks = o.blocks or list(COPYDAYS_BLOCKS)
        queries: list[Item] = []
        for block in blocks:
            family = block.split("/")[0]
            if family not in COPYDAYS_BLOCKS:
                raise BenchError(f"copydays: unknown block {block!r}; expected one of "
                                 f"{', '.join(COPYDAYS_BLOCKS)} or a sub-block like jpegqual/50")
            folder = root / block
            if not folder.is_dir():
                raise BenchError(f"copydays: block folder {folder} does not exist")
            subs = ([folder] if block == "strong" or "/" in block else
                    sorted((p for p in folder.iterdir() if p.is_dir()),
                           key=lambda p: natural_key(p.name)))
            for sub in subs:
                name = sub.relative_to(root).as_posix()
                for it in folder_items(sub, f"{ns}-{name}", "none", ids="stem",
                                       what=f"copydays {name}"):
                    assert it.path is not None
                    it.identity = f"{ns}:{it.path.stem[:n]}"
                    it.attrs = {"attack": name, "family": family}
                    queries.append(it)
        if not queries:
            raise BenchError(f"copydays: no query images under {root}")
        database = list(originals)
        if o.distractors:
            database += folder_items(self.resolve(o.distractors), f"{ns}-distractor", "none",
                                     ids="path", limit=o.n_distractors,
                                     what="copydays distractors")
        return ItemData(database, queries, description=describe(
            self.registered_name, database, queries, blocks=blocks,
            n_originals=len(originals), n_distractors=len(database) - len(originals)))
