"""`copydetect-mini`: an offline copy-detection benchmark built from what is installed.

Originals are the real photographs that scikit-image, scikit-learn and
matplotlib ship inside their packages (23 of them; synthetic test patterns,
silhouettes, logos, tiny files and the right half of the motorcycle stereo
pair, a near-duplicate of the left, are left out). Queries are their 58
attacks; the database is the originals plus seeded procedural distractors
(textures, gradients, shapes and mixtures of them).

Everything is generated once into the cache (``<cache>/datasets/copydetect-mini``)
by parallel workers; a second run finds the files and reuses them. Outputs are
written atomically, so an interrupted generation resumes.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from bench.core.errors import BenchError, MissingDependencyError
from bench.core.options import StrictOptions
from bench.datasets import register
from bench.datasets.base import Dataset, ItemData
from bench.datasets.images import describe, folder_items
from bench.datasets.prepare.attacks import ATTACK_NAMES, get_attack, save_png, write_attacks

GENERATOR_VERSION = 1

# (name, package, file inside the package's data folder); names avoid "_", which
# separates the identity from the attack in query file names.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "astronaut.png"),
    ("brick", "skimage", "brick.png"),
    ("camera", "skimage", "camera.png"),
    ("cell", "skimage", "cell.png"),
    ("chelsea", "skimage", "chelsea.png"),
    ("clock-motion", "skimage", "clock_motion.png"),
    ("coffee", "skimage", "coffee.png"),
    ("coins", "skimage", "coins.png"),
    ("grass", "skimage", "grass.png"),
    ("gravel", "skimage", "gravel.png"),
    ("hubble-deep-field", "skimage", "hubble_deep_field.jpg"),
    ("ihc", "skimage", "ihc.png"),
    ("microaneurysms", "skimage", "microaneurysms.png"),
    ("moon", "skimage", "moon.png"),
    ("motorcycle", "skimage", "motorcycle_left.png"),
    ("page", "skimage", "page.png"),
    ("retina", "skimage", "retina.jpg"),
    ("rocket", "skimage", "rocket.jpg"),
    ("text", "skimage", "text.png"),
    ("china", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
    ("grace-hopper", "matplotlib", "grace_hopper.jpg"),
    ("minduka-present", "matplotlib", "Minduka_Present_Blue_Pack.png"),
)


def _data_dir(package: str) -> Path:
    if package == "skimage":
        try:
            import skimage
        except ImportError:
            raise MissingDependencyError("scikit-image", "images", "copydetect-mini") from None
        return Path(skimage.__file__).parent / "data"
    if package == "sklearn":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images"
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data"


def sample_photos(names: list[str] | None = None) -> list[tuple[str, Path]]:
    """(name, file) of the shipped photos present in this installation."""
    known = {name for name, _, _ in PHOTOS}
    for name in names or []:
        if name not in known:
            raise BenchError(f"copydetect-mini: unknown photo {name!r}; known: "
                             f"{', '.join(sorted(known))}")
    found = []
    for name, package, file in PHOTOS:
        if names and name not in names:
            continue
        path = _data_dir(package) / file
        if path.is_file():
            found.append((name, path))
    if not found:
        raise BenchError("copydetect-mini: none of the sample photos of scikit-image, "
                         "scikit-learn and matplotlib were found")
    return found


def load_photo(path: Path, max_side: int) -> Image.Image:
    """RGB, transparency flattened on white, longest side at most max_side."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P"):
            rgba = im.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        else:
            img = im.convert("RGB")
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img


# --- procedural distractors ---------------------------------------------------------

def _palette(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] through 2-4 random colours."""
    n = int(rng.integers(2, 5))
    stops = np.sort(np.concatenate([[0.0, 1.0], rng.random(n - 2)]))
    colours = rng.integers(0, 256, size=(n, 3)).astype(np.float64)
    return np.stack([np.interp(values, stops, colours[:, c]) for c in range(3)], axis=-1)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    field = np.zeros((h, w))
    for octave in range(int(rng.integers(2, 5))):
        sigma = float(rng.uniform(1, 24)) / (octave + 1)
        field += gaussian_filter(rng.standard_normal((h, w)), sigma) * sigma
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    return _palette(rng, field)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(angle) + y * np.sin(angle)
    else:
        cy, cx = rng.random(2)
        t = np.hypot(y - cy, x - cx)
    if rng.random() < 0.5:
        t = t + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 8) * t + rng.uniform(0, 6))
    t = (t - t.min()) / (np.ptp(t) + 1e-12)
    return _palette(rng, t)


def _shapes(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(int(rng.integers(4, 30))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, x1 = sorted(rng.integers(-w // 4, w + w // 4, 2).tolist())
        y0, y1 = sorted(rng.integers(-h // 4, h + h // 4, 2).tolist())
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 2:
            pts = [(int(a), int(b)) for a, b in zip(rng.integers(0, w, 5), rng.integers(0, h, 5),
                                                     strict=True)]
            draw.polygon(pts, fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 12)))
    return img


def procedural_image(index: int, seed: int, size: int = 256) -> Image.Image:
    """Distractor number ``index``: a texture, gradient, shapes, or shapes over a background."""
    digest = hashlib.blake2b(f"distractor|{seed}|{index}".encode(), digest_size=16).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    w, h = [(size, size), (size, size * 3 // 4), (size * 3 // 4, size)][int(rng.integers(0, 3))]
    kind = int(rng.integers(0, 4))
    if kind == 0:
        arr = _texture(rng, h, w)
    elif kind == 1:
        arr = _gradient(rng, h, w)
    else:
        base = rng.integers(0, 256, 3)
        arr = np.broadcast_to(base, (h, w, 3)).astype(np.float64)
        if kind == 3:
            arr = _texture(rng, h, w) if rng.random() < 0.5 else _gradient(rng, h, w)
    img = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")
    return _shapes(rng, img) if kind >= 2 else img


#: procedural images from these indices on are never database distractors (at most
#: 100,000): sources of negative queries, and the background set
NEGATIVE_START, BACKGROUND_START, TRAINING_START = 100_000, 200_000, 300_000


def _write_distractors(indices: list[int], folder: Path, seed: int, size: int,
                       start: int = 0) -> int:
    for i in indices:
        save_png(procedural_image(start + i, seed, size), folder / f"{i:05d}.png")
    return len(indices)


def generate_distractors(folder: Path, n: int, seed: int, size: int, workers: int,
                         progress: bool, start: int = 0) -> None:
    """Files 00000.png .. (n-1) (procedural images start .. start+n-1); existing ones are
    kept, so a larger n only adds files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    folder.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(n) if not (folder / f"{i:05d}.png").exists()]
    if not todo:
        return
    blocks = [todo[s : s + 64] for s in range(0, len(todo), 64)]
    columns = (TextColumn("[bold]distractors"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("distractors", total=len(todo))
        if workers <= 1:
            for block in blocks:
                bar.advance(task, _write_distractors(block, folder, seed, size, start))
            return
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_write_distractors, b, folder, seed, size, start)
                       for b in blocks]
            for fut in futures:
                bar.advance(task, fut.result())


class CopydetectMiniOptions(StrictOptions):
    n_distractors: int = Field(2500, ge=0, le=100_000)
    distractor_size: int = Field(256, ge=32, le=1024, description="longest side, pixels")
    max_side: int = Field(512, ge=32, le=4096, description="originals are shrunk to this")
    photos: list[str] | None = Field(None, description="subset of the sample photos")
    attacks: list[str] | None = Field(None, description="subset of the 58 attacks")
    workers: int | None = Field(None, ge=1, description="generation processes (default: cores)")
    progress: bool = True
    negatives: int = Field(0, ge=0, le=10_000, description=(
        "procedural images outside the database whose attacks join the queries: queries "
        "without a match (negatives of the pooled copy-detection metrics)"))
    holdout: list[str] | None = Field(None, description=(
        "sample photos left out of the database; their attacks stay queries (negatives)"))
    background: int = Field(0, ge=0, le=100_000, description=(
        "procedural images in a separate background set (never in the database): score "
        "normalisation and post-processing are fitted on it"))
    training: int = Field(0, ge=0, le=100_000, description=(
        "procedural images in a separate training set: post-processing is fitted on it "
        "instead of the background set"))


@register("copydetect-mini")
class CopydetectMini(Dataset):
    """Shipped sample photos + their 58 attacks + procedural distractors; fully offline."""

    Options = CopydetectMiniOptions
    description = "offline copy detection: ~23 sample photos x 58 attacks vs 2.5k distractors"

    def load(self) -> ItemData:
        o: CopydetectMiniOptions = self.options  # type: ignore[assignment]
        attacks = tuple(o.attacks) if o.attacks else ATTACK_NAMES
        for a in attacks:
            get_attack(a)
        workers = o.workers or max(1, min(8, os.cpu_count() or 1))
        seed = self.context.seed
        root = Path(self.context.cache_dir) / "datasets" / f"copydetect-mini-v{GENERATOR_VERSION}"
        originals_dir = root / f"originals-{o.max_side}"
        attacks_dir = root / f"attacks-{o.max_side}-seed{seed}"
        distractors_dir = root / f"distractors-{o.distractor_size}-seed{seed}"

        photos = sample_photos(o.photos)
        originals_dir.mkdir(parents=True, exist_ok=True)
        sources = []
        for name, path in photos:
            out = originals_dir / f"{name}.png"
            if not out.exists():
                save_png(load_photo(path, o.max_side), out)
            sources.append(out)
        report = write_attacks(originals_dir, attacks_dir, seed, workers, o.progress,
                               attacks=attacks, overwrite=False, sources=sources)
        if report.skipped:
            raise BenchError(f"copydetect-mini: could not read {report.skipped[0][0]}")
        generate_distractors(distractors_dir, o.n_distractors, seed, o.distractor_size,
                             workers, o.progress)

        names = {name for name, _ in photos}
        held = set(o.holdout or ())
        if held - names:
            raise BenchError(f"copydetect-mini: holdout {sorted(held - names)[0]!r} is not one "
                             f"of the photos used: {', '.join(sorted(names))}")
        originals = [it for it in folder_items(originals_dir, "mini", "stem", ids="stem",
                                               what="copydetect-mini originals")
                     if it.path is not None and it.path.stem in names - held]
        wanted = {f"{n}_{a}" for n in names for a in attacks}
        queries = [it for it in folder_items(attacks_dir, "mini", "prefix", ids="stem",
                                             what="copydetect-mini attacks")
                   if it.path is not None and it.path.stem in wanted]
        distractors = []
        if o.n_distractors:
            distractors = folder_items(distractors_dir, "mini-distractor", "stem", ids="stem",
                                       limit=o.n_distractors, what="copydetect-mini distractors")
        negatives = self._negatives(root, attacks, workers) if o.negatives else []
        background: list = []
        if o.background:
            bg_dir = root / f"background-{o.distractor_size}-seed{seed}"
            generate_distractors(bg_dir, o.background, seed, o.distractor_size, workers,
                                 o.progress, start=BACKGROUND_START)
            background = folder_items(bg_dir, "mini-background", "stem", ids="stem",
                                      limit=o.background, what="copydetect-mini background")
        training: list = []
        if o.training:
            tr_dir = root / f"training-{o.distractor_size}-seed{seed}"
            generate_distractors(tr_dir, o.training, seed, o.distractor_size, workers,
                                 o.progress, start=TRAINING_START)
            training = folder_items(tr_dir, "mini-training", "stem", ids="stem",
                                    limit=o.training, what="copydetect-mini training")
        database = originals + distractors
        queries = queries + negatives
        return ItemData(database, queries, background=background, training=training,
                        description=describe(
            self.registered_name, database, queries, n_originals=len(originals),
            n_distractors=len(distractors), generator=GENERATOR_VERSION, cache=str(root),
            holdout=sorted(held), n_negative_sources=o.negatives,
            n_background=len(background), n_training=len(training)))

    def _negatives(self, root: Path, attacks: tuple[str, ...], workers: int) -> list:
        """Attacks of procedural images that are not in the database (negatives)."""
        o: CopydetectMiniOptions = self.options  # type: ignore[assignment]
        seed = self.context.seed
        src = root / f"negatives-{o.distractor_size}-seed{seed}"
        dst = root / f"negative-attacks-{o.distractor_size}-seed{seed}"
        src.mkdir(parents=True, exist_ok=True)
        sources = []
        for j in range(o.negatives):
            out = src / f"neg{j:05d}.png"
            if not out.exists():
                save_png(procedural_image(NEGATIVE_START + j, seed, o.distractor_size), out)
            sources.append(out)
        report = write_attacks(src, dst, seed, workers, o.progress, attacks=attacks,
                               overwrite=False, sources=sources)
        if report.skipped:
            raise BenchError(f"copydetect-mini: could not read {report.skipped[0][0]}")
        wanted = {f"neg{j:05d}_{a}" for j in range(o.negatives) for a in attacks}
        return [it for it in folder_items(dst, "mini-negative", "prefix", ids="stem",
                                          what="copydetect-mini negatives")
                if it.path is not None and it.path.stem in wanted]
