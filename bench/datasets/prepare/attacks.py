"""The 58 image attacks of the copy-detection protocol, and `bench attacks`.

Every attack is a pure function of (image, rng), and the rng of one output is
seeded from (seed, source file name, attack name) alone, so the bytes written
depend neither on processing order nor on the number of workers: two runs of
`bench attacks` produce byte-identical PNGs (same Pillow / zlib / FreeType).

Attacks always return an RGB image; geometric ones that change the canvas
(crop, rotation, shear) rescale back to the original size so the query keeps
the original's framing, while `scale_*` deliberately changes the size.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import string
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from bench.core.errors import BenchError, MissingDependencyError

logger = logging.getLogger(__name__)

AttackFn = Callable[[Image.Image, np.random.Generator], Image.Image]

FAMILIES = ("noise", "filter", "compression", "scaling", "crop", "rotation", "shear",
            "enhancement", "text")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Attack:
    name: str
    family: str
    fn: AttackFn


def _fmt(value: float) -> str:
    return f"{value:g}"


def _to_float(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64) / 255.0


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")


def _noise(mode: str, **kwargs: float) -> AttackFn:
    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        try:
            from skimage.util import random_noise
        except ImportError:
            raise MissingDependencyError("scikit-image", "images", "noise attacks") from None
        return _to_image(random_noise(_to_float(img), mode=mode, rng=rng, **kwargs))

    return attack


def _gaussian_blur(kernel: int) -> AttackFn:
    # Fixed kernel size like OpenCV's GaussianBlur(ksize), sigma from the rule.
    sigma = 0.6 * ((kernel - 1) * 0.5 - 1) + 1
    radius = (kernel - 1) // 2

    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        from scipy.ndimage import gaussian_filter

        arr = _to_float(img)
        out = gaussian_filter(arr, sigma=(sigma, sigma, 0), radius=(radius, radius, 0),
                              mode="mirror")
        return _to_image(out)

    return attack


def _median(kernel: int) -> AttackFn:
    return lambda img, rng: img.filter(ImageFilter.MedianFilter(kernel))


def _jpeg(quality: int) -> AttackFn:
    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    return attack


def _scale(factor: float) -> AttackFn:
    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        return img.resize(size, Image.Resampling.LANCZOS)

    return attack


def _crop(percent: int) -> AttackFn:
    """Remove `percent` % of the width and of the height around the centre, then rescale."""

    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        cw, ch = max(1, round(w * (1 - percent / 100))), max(1, round(h * (1 - percent / 100)))
        left, top = (w - cw) // 2, (h - ch) // 2
        return img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.Resampling.LANCZOS)

    return attack


def _rotate(degrees: int) -> AttackFn:
    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)
        return out.resize(img.size, Image.Resampling.LANCZOS)

    return attack


def _shear(degrees: int) -> AttackFn:
    """Horizontal shear on a canvas widened to keep every pixel, then rescaled."""

    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        t = float(np.tan(np.radians(degrees)))
        width = w + int(np.ceil(h * t))
        out = img.transform((width, h), Image.Transform.AFFINE, (1, -t, 0, 0, 1, 0),
                            resample=Image.Resampling.BICUBIC)
        return out.resize((w, h), Image.Resampling.LANCZOS)

    return attack


def _enhance(kind: type[ImageEnhance._Enhance], factor: float) -> AttackFn:
    return lambda img, rng: kind(img).enhance(factor)


@lru_cache(maxsize=1)
def font_path() -> str:
    """DejaVu Sans Bold as shipped by matplotlib: present wherever the harness runs."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    if not path.is_file():
        raise BenchError(f"text attack: font {path} not found in the matplotlib installation")
    return str(path)


def _text(length: int) -> AttackFn:
    """White bold random text with a black outline, shrunk until it fits, at a seeded spot."""
    alphabet = np.array(list(string.ascii_letters + string.digits))

    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        text = "".join(rng.choice(alphabet, size=length))
        w, h = img.size
        size = max(6, min(w, h) // 8)
        while True:
            font = ImageFont.truetype(font_path(), size)
            stroke = max(1, size // 12)
            left, top, right, bottom = ImageDraw.Draw(img).textbbox(
                (0, 0), text, font=font, stroke_width=stroke)
            tw, th = right - left, bottom - top
            if (tw <= w and th <= h) or size == 1:
                break
            size = max(1, min(size - 1, int(size * w / max(tw, 1))))
        x = int(rng.integers(0, max(0, w - tw) + 1)) - left
        y = int(rng.integers(0, max(0, h - th) + 1)) - top
        out = img.copy()
        ImageDraw.Draw(out).text((x, y), text, font=font, fill=(255, 255, 255),
                                 stroke_width=stroke, stroke_fill=(0, 0, 0))
        return out

    return attack


def _build_table() -> tuple[Attack, ...]:
    table: list[Attack] = []

    def add(name: str, family: str, fn: AttackFn) -> None:
        table.append(Attack(name, family, fn))

    for v in (0.01, 0.02, 0.05):
        add(f"gaussian_noise_{_fmt(v)}", "noise", _noise("gaussian", var=v))
    for v in (0.05, 0.1, 0.15):
        add(f"salt_pepper_{_fmt(v)}", "noise", _noise("s&p", amount=v))
    for v in (0.01, 0.02, 0.05):
        add(f"speckle_noise_{_fmt(v)}", "noise", _noise("speckle", var=v))
    for k in (3, 5, 7):
        add(f"gaussian_blur_{k}", "filter", _gaussian_blur(k))
    for k in (3, 5, 7):
        add(f"median_filter_{k}", "filter", _median(k))
    for q in (10, 50, 90):
        add(f"jpeg_{q}", "compression", _jpeg(q))
    for f in (0.4, 0.8, 1.2, 1.6):
        add(f"scale_{_fmt(f)}", "scaling", _scale(f))
    for p in (5, 10, 20, 40, 60):
        add(f"crop_{p}", "crop", _crop(p))
    for d in (5, 10, 20, 40, 60):
        add(f"rotate_{d}", "rotation", _rotate(d))
    for d in (1, 2, 5, 10, 20):
        add(f"shear_{d}", "shear", _shear(d))
    for label, kind in (("contrast", ImageEnhance.Contrast), ("color", ImageEnhance.Color),
                        ("brightness", ImageEnhance.Brightness),
                        ("sharpness", ImageEnhance.Sharpness)):
        for f in (0.5, 0.66, 1.5, 2):
            add(f"{label}_{_fmt(f)}", "enhancement", _enhance(kind, f))
    for n in (10, 20, 30, 40, 50):
        add(f"text_{n}", "text", _text(n))
    return tuple(table)


ATTACKS: tuple[Attack, ...] = _build_table()
ATTACK_NAMES: tuple[str, ...] = tuple(a.name for a in ATTACKS)
_BY_NAME = {a.name: a for a in ATTACKS}


def family_of(attack_name: str) -> str:
    """Family of a known attack name; "other" for a name outside the table (user data)."""
    attack = _BY_NAME.get(attack_name)
    if attack is None and attack_name.startswith("augly_"):
        return "augly"
    return attack.family if attack else "other"


def get_attack(name: str) -> Attack:
    """One of the 58, or an ``augly_*`` attack (bench.datasets.prepare.augly_attacks; the
    AugLy library itself is imported only when the attack runs)."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith("augly_"):
        from bench.datasets.prepare.augly_attacks import augly_fn

        return Attack(name, "augly", augly_fn(name))
    raise BenchError(f"unknown attack {name!r}; known: {', '.join(ATTACK_NAMES)}, and the "
                     "augly_* family")


def attack_image(img: Image.Image, attack: str | Attack, rng: np.random.Generator) -> Image.Image:
    """Apply one attack to an image (converted to RGB first)."""
    a = attack if isinstance(attack, Attack) else get_attack(attack)
    return a.fn(img.convert("RGB"), rng)


def attack_rng(seed: int, file_name: str, attack: str) -> np.random.Generator:
    """The generator of one output, independent of order and workers."""
    digest = hashlib.blake2b(f"{seed}|{file_name}|{attack}".encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def output_name(stem: str, attack: str) -> str:
    return f"{stem}_{attack}.png"


def save_png(img: Image.Image, path: Path) -> None:
    """Atomic PNG write without metadata, so reruns give the same bytes and no half files.

    zlib level 1: lossless like any level, files ~20 % larger, encoding 3x faster."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    img.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def list_source_images(src: Path) -> list[Path]:
    if not src.is_dir():
        raise BenchError(f"attacks: source folder {src} does not exist")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BenchError(f"attacks: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {src}")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise BenchError(
                f"attacks: {stems[p.stem]} and {p} have the same stem {p.stem!r}; outputs "
                "are named <stem>_<attack>.png, so stems must be unique"
            )
        stems[p.stem] = p
    return files


def attack_file(src: Path, dst: Path, seed: int, attacks: tuple[str, ...],
                overwrite: bool) -> tuple[int, str | None]:
    """All attacks of one source file; returns (files written, reason it was skipped)."""
    todo = [a for a in attacks if overwrite or not (dst / output_name(src.stem, a)).exists()]
    if not todo:
        return 0, None
    try:
        with Image.open(src) as im:
            im.load()
            img = im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    for name in todo:
        out = attack_image(img, name, attack_rng(seed, src.name, name))
        save_png(out, dst / output_name(src.stem, name))
    return len(todo), None


@dataclass
class AttackReport:
    images: int = 0
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def write_attacks(src_dir: Path | str, dst_dir: Path | str, seed: int = 0, workers: int = 1,
                  progress: bool = True, *, attacks: tuple[str, ...] = ATTACK_NAMES,
                  overwrite: bool = True,
                  sources: list[Path] | None = None) -> AttackReport:
    """Write `<stem>_<attack>.png` for every image under src_dir (recursively) into dst_dir.

    Unreadable source images are skipped with a warning and listed in the report.
    With ``overwrite=False`` outputs that already exist are kept (resumable).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    src, dst = Path(src_dir), Path(dst_dir)
    for a in attacks:
        get_attack(a)
    files = sources if sources is not None else list_source_images(src)
    dst.mkdir(parents=True, exist_ok=True)
    report = AttackReport(images=len(files))
    if not overwrite:  # finished images need no worker process at all
        files = [p for p in files
                 if not all((dst / output_name(p.stem, a)).exists() for a in attacks)]
    columns = (TextColumn("[bold]attacks"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("attacks", total=len(files))

        def record(path: Path, result: tuple[int, str | None]) -> None:
            written, reason = result
            report.written += written
            if reason:
                logger.warning("attacks: skipped unreadable image %s: %s", path, reason)
                report.skipped.append((str(path), reason))
            bar.advance(task)

        if workers <= 1 or len(files) <= 1:
            for path in files:
                record(path, attack_file(path, dst, seed, attacks, overwrite))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(attack_file, p, dst, seed, attacks, overwrite)
                           for p in files]
                for path, fut in zip(files, futures, strict=True):
                    record(path, fut.result())
    return report
