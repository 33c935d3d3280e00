"""What can be downloaded, from where, and how it is laid out: data, not code.

Sizes and SHA-256 digests are recorded only where they are actually known.
``None`` means "not recorded yet": the size is then checked against the server's
Content-Length and the SHA-256 of what arrived is written to the data directory's
manifest (marked unverified), so a later corruption is still detected. When a
maintainer has verified a file, its digest goes here and every user gets a real
end-to-end check.

URLs after the first of a file are fallbacks, tried only when an earlier one
answers "not found" (hosts move; old links keep working for years on some, not
on others).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BenchError


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DownloadableDataset:
    name: str
    title: str
    files: tuple[RemoteFile, ...]
    rule: str  # an unpack rule of bench.datasets.download.unpack.RULES
    target: str  # relative to the data directory; a file for rule "file", else a folder
    layout: str  # what the user gets, shown by `bench datasets info`
    usage: str  # how an experiment refers to it
    group: str = ""
    homepage: str = ""
    licence: str = ""
    expect_files: int | None = None  # files the rule must produce
    strict_count: bool = True  # False: a different count is a warning, not an error


@dataclass(frozen=True)
class ManualDataset:
    """A dataset behind an account or a licence click: we only say how to get it."""

    name: str
    title: str
    where: str
    layout: str
    prepare: str
    licence: str = ""


@dataclass(frozen=True)
class Weights:
    name: str  # the extractor name the converted .pt file serves
    family: str  # simclr-v1 | simclr-v2
    variant: str  # as the user types it: 1x, r50_1x_sk0, ...
    files: tuple[RemoteFile, ...]
    rule: str  # tf-zip | flat
    target: str  # TensorFlow checkpoint folder, relative to the data directory
    output: str  # converted state dict, relative to the data directory


# --- ann-benchmarks -------------------------------------------------------------------

ANN_BENCHMARKS_NAMES = (
    "deep-image-96-angular",
    "fashion-mnist-784-euclidean",
    "gist-960-euclidean",
    "glove-25-angular",
    "glove-50-angular",
    "glove-100-angular",
    "glove-200-angular",
    "kosarak-jaccard",
    "lastfm-64-dot",
    "mnist-784-euclidean",
    "nytimes-256-angular",
    "sift-128-euclidean",
)


def _ann(name: str) -> DownloadableDataset:
    return DownloadableDataset(
        name=name,
        title=f"ann-benchmarks {name} (HDF5: train, test, neighbors, distances)",
        files=(RemoteFile(f"{name}.hdf5", (f"http://ann-benchmarks.com/{name}.hdf5",)),),
        rule="file",
        target=f"ann-benchmarks/{name}.hdf5",
        layout=f"ann-benchmarks/{name}.hdf5",
        usage=f"dataset: {{name: hdf5, path: ${{BENCH_DATA}}/ann-benchmarks/{name}.hdf5}}",
        group="ann-benchmarks",
        homepage="https://github.com/erikbern/ann-benchmarks",
    )


# --- images ---------------------------------------------------------------------------

_BSR = "Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"

BSDS500 = DownloadableDataset(
    name="bsds500",
    title="Berkeley Segmentation Dataset BSDS500: the 500 train/val/test photographs",
    files=(RemoteFile("BSR_bsds500.tgz", (f"http://www.eecs.berkeley.edu/{_BSR}",
                                          f"https://www2.eecs.berkeley.edu/{_BSR}")),),
    rule="bsds500",
    target="bsds500/original",
    layout="bsds500/original/<id>.jpg (500 images; BSR/BSDS500/data/images/{train,val,test})"
           "\nthen: bench attacks ${BENCH_DATA}/bsds500/original ${BENCH_DATA}/bsds500/attacks",
    usage="bench/config/experiments/bsds500.yaml reads ${BENCH_DATA}/bsds500/{original,attacks}",
    group="images",
    homepage="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html",
    expect_files=500,
)

_MIR = ("http://press.liacs.nl/mirflickr/mirflickr1m/",
        "https://press.liacs.nl/mirflickr/mirflickr1m.v3b/",
        "http://press.liacs.nl/mirflickr/mirflickr1m.v2/")

MIRFLICKR_500K = DownloadableDataset(
    name="mirflickr-500k",
    title="MIRFLICKR-1M, first half (images0..4.zip): 500,000 Flickr distractor images",
    files=tuple(RemoteFile(f"images{i}.zip", tuple(f"{base}images{i}.zip" for base in _MIR))
                for i in range(5)),
    rule="mirflickr",
    target="mirflickr",  # where the `flickr` dataset looks by default under BENCH_DATA
    layout="mirflickr/<folder>/<N>.jpg, folders 0..49 (10,000 images each); a few files of "
           "the collection are corrupt and are skipped by the image pipeline",
    usage="dataset `flickr` (default folder ${BENCH_DATA}/mirflickr), e.g. as the distractors "
          "of a `copy-detection` dataset",
    group="images",
    homepage="https://press.liacs.nl/mirflickr/",
    licence="Flickr images under Creative Commons licences; see the MIRFLICKR site",
    expect_files=500_000,
    strict_count=False,
)

# --- TEXMEX ---------------------------------------------------------------------------

_TEXMEX = "ftp://ftp.irisa.fr/local/texmex/corpus/"


def _texmex(name: str, title: str) -> DownloadableDataset:
    return DownloadableDataset(
        name=name,
        title=title,
        files=(RemoteFile(f"{name}.tar.gz", (f"{_TEXMEX}{name}.tar.gz",)),),
        rule="texmex",
        target=f"texmex/{name}",
        layout=f"texmex/{name}/{name}_{{base,query,learn}}.fvecs, {name}_groundtruth.ivecs",
        usage=f"dataset: {{name: vectors, database: ${{BENCH_DATA}}/texmex/{name}/"
              f"{name}_base.fvecs, queries: .../{name}_query.fvecs, "
              f"neighbors: .../{name}_groundtruth.ivecs}}",
        group="texmex",
        homepage="http://corpus-texmex.irisa.fr/",
        expect_files=4,
    )


# --- behind an account or a licence -----------------------------------------------------

MANUAL = (
    ManualDataset(
        name="memes",
        title="Kaggle Reddit memes (templates + posts) for meme template matching",
        where="Kaggle (account and licence acceptance required): the Reddit memes dataset that "
              "ships reddit_posts.csv and its images folder; download with the Kaggle web page "
              "or `kaggle datasets download`",
        layout="memes/templates/<template>.<ext> and memes/memes/<template>_<n>.<ext>",
        prepare="bench datasets prepare memes reddit_posts.csv IMAGES_DIR ${BENCH_DATA}/memes",
    ),
    ManualDataset(
        name="fashion200k",
        title="Fashion200k (composed retrieval; TIRG / ComposeAE)",
        where="https://github.com/xthan/fashion-200k (images and labels are on Google Drive; "
              "the terms of use must be accepted)",
        layout="fashion200k/women/... (images) and "
               "fashion200k/labels/*_{train,test}_detect_all.txt",
        prepare="no preparation step: point the experiment's dataset options at "
                "${BENCH_DATA}/fashion200k",
    ),
    ManualDataset(
        name="mit-states",
        title="MIT-States (adjective-noun states; composed retrieval)",
        where="http://web.mit.edu/phillipi/Public/states_and_transformations/index.html "
              "(release_dataset.zip; research use)",
        layout="mit-states/images/<adjective> <noun>/<file>.jpg",
        prepare="no preparation step: unzip into ${BENCH_DATA}/mit-states",
    ),
    ManualDataset(
        name="fashioniq",
        title="FashionIQ (dress / shirt / toptee composed queries)",
        where="https://github.com/XiaoxiaoGuo/fashion-iq (captions and splits; the images are "
              "distributed as URLs or on request from the authors)",
        layout="fashioniq/images/<asin>.jpg, fashioniq/captions/cap.<type>.<split>.json, "
               "fashioniq/image_splits/split.<type>.<split>.json",
        prepare="no preparation step: place the files under ${BENCH_DATA}/fashioniq",
    ),
    ManualDataset(
        name="disc21",
        title="DISC21 / ISC 2021 image copy detection (1M references, 50K dev + 50K final "
              "queries, 1M training images)",
        where="https://ai.meta.com/datasets/disc21-dataset/ (licence acceptance; the 2021 "
              "challenge files are also on the DrivenData ISC 2021 page); the ground-truth "
              "CSVs come with the queries",
        layout="disc21/references/R000000.jpg.., disc21/dev_queries/Q00000.jpg.., "
               "disc21/final_queries/Q50000.jpg.., disc21/train/T000000.jpg.., "
               "disc21/dev_ground_truth.csv (query_id,reference_id; empty = no match); the "
               "challenge names reference_images/, query_images/, training_images/ and "
               "public_ground_truth.csv (25K public subset) work too",
        prepare="no preparation step: unzip under ${BENCH_DATA}/disc21; dataset options "
                "split: dev|final, subset, n_queries, n_references, background (training)",
        licence="DISC21 terms (research use)",
    ),
    ManualDataset(
        name="copydays",
        title="INRIA Copydays (157 originals; strong, jpeg-quality and crop attacks)",
        where="https://thoth.inrialpes.fr/~jegou/data.php.html#copydays (original, strong, "
              "jpeg and crops archives); the +10K distractor setting uses any 10K-image "
              "folder (e.g. YFCC100M / Flickr images)",
        layout="copydays/original/<id>.jpg, copydays/strong/<id>.jpg, "
               "copydays/jpegqual/<q>/<id>.jpg, copydays/crops/<p>/<id>.jpg",
        prepare="no preparation step: unpack the archives into ${BENCH_DATA}/copydays; "
                "dataset options blocks, distractors, n_distractors",
    ),
    ManualDataset(
        name="coco",
        title="MS-COCO 2014 val images + captions (cross-modal retrieval)",
        where="https://cocodataset.org/#download (val2014 images and annotations_trainval2014; "
              "use under the COCO terms and the Flickr terms of the images)",
        layout="coco/val2014/COCO_val2014_<id>.jpg and coco/annotations/captions_val2014.json",
        prepare="no preparation step: unzip both archives into ${BENCH_DATA}/coco",
    ),
)

# --- SimCLR checkpoints -----------------------------------------------------------------

_GCS = "https://storage.googleapis.com/"
SIMCLR_V2_VARIANTS = (
    "r50_1x_sk0", "r50_1x_sk1", "r50_2x_sk0", "r50_2x_sk1",
    "r101_1x_sk0", "r101_1x_sk1", "r101_2x_sk0", "r101_2x_sk1",
    "r152_1x_sk0", "r152_1x_sk1", "r152_2x_sk0", "r152_2x_sk1", "r152_3x_sk1",
)
# Every published v2 pretrained checkpoint is the step-250228 one; the .meta graph and
# graph.pbtxt are not needed to read the variables, so they are not fetched.
_V2_FILES = ("checkpoint", "model.ckpt-250228.index", "model.ckpt-250228.data-00000-of-00001")


def _simclr_v1(width: str) -> Weights:
    zip_name = f"ResNet50_{width}.zip"
    return Weights(
        name=f"simclr-v1-r50-{width}",
        family="simclr-v1",
        variant=width,
        files=(RemoteFile(zip_name, (
            f"{_GCS}simclr-gcs/checkpoints/{zip_name}",
            f"{_GCS}simclr-checkpoints/simclrv1/pretrain/{width}/{zip_name}",
        )),),
        rule="tf-zip",
        target=f"weights/tf/simclr-v1-r50-{width}",
        output=f"weights/simclr-v1-r50-{width}.pt",
    )


def _simclr_v2(variant: str) -> Weights:
    name = "simclr-v2-" + variant.replace("_", "-")
    base = f"{_GCS}simclr-checkpoints/simclrv2/pretrained/{variant}/"
    return Weights(
        name=name,
        family="simclr-v2",
        variant=variant,
        files=tuple(RemoteFile(f, (base + f,)) for f in _V2_FILES),
        rule="flat",
        target=f"weights/tf/{name}",
        output=f"weights/{name}.pt",
    )


DATASETS: dict[str, DownloadableDataset] = {
    d.name: d
    for d in (
        *(_ann(n) for n in ANN_BENCHMARKS_NAMES),
        BSDS500,
        MIRFLICKR_500K,
        _texmex("siftsmall", "TEXMEX ANN_SIFT10K (siftsmall): 10,000 SIFT vectors, 100 queries"),
        _texmex("sift", "TEXMEX ANN_SIFT1M: 1,000,000 SIFT vectors, 10,000 queries"),
    )
}
MANUAL_DATASETS: dict[str, ManualDataset] = {m.name: m for m in MANUAL}
WEIGHTS: dict[tuple[str, str], Weights] = {
    (w.family, w.variant): w
    for w in (*(_simclr_v1(x) for x in ("1x", "2x", "4x")),
              *(_simclr_v2(v) for v in SIMCLR_V2_VARIANTS))
}


def get_dataset(name: str) -> DownloadableDataset | ManualDataset:
    if name in DATASETS:
        return DATASETS[name]
    if name in MANUAL_DATASETS:
        return MANUAL_DATASETS[name]
    known = ", ".join([*DATASETS, *MANUAL_DATASETS])
    raise BenchError(f"unknown dataset {name!r}; known: {known}")


def get_weights(family: str, variant: str) -> Weights:
    """Accept both the published spelling (r50_1x_sk0) and ours (r50-1x-sk0, r50_1x)."""
    key = variant.strip().lower().replace("-", "_")
    if family == "simclr-v1":
        key = key.removeprefix("r50_")
    weights = WEIGHTS.get((family, key))
    if weights is None:
        variants = [v for f, v in WEIGHTS if f == family]
        if not variants:
            families = sorted({f for f, _ in WEIGHTS})
            raise BenchError(f"unknown weights family {family!r}; known: {', '.join(families)}")
        raise BenchError(f"unknown {family} variant {variant!r}; known: {', '.join(variants)}")
    return weights
