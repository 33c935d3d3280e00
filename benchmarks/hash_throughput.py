"""Hashing throughput of each perceptual hash through the feature store.

Prints images/s for every hash: the full store pipeline (decode + hash in
worker processes, chunked writes, assembly) with ``--workers`` processes, and
the bare hash on already-decoded images in one process. Images are JPEGs cut
from the shipped sample photos at ``--size`` pixels, like typical queries.

    python benchmarks/hash_throughput.py --n 600 --workers 2
    taskset -c 0,1 python benchmarks/hash_throughput.py   # pin to 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.items import Item  # noqa: E402
from bench.datasets.samples import load_photo, sample_photos  # noqa: E402
from bench.extractors import registry  # noqa: E402
from bench.features.store import extract_features  # noqa: E402

HASHES = ("ahash", "phash", "dhash", "whash", "colorhash", "crop-resistant")


def make_images(folder: Path, n: int, size: int, seed: int) -> list[Item]:
    rng = np.random.default_rng(seed)
    photos = [load_photo(path, 1024) for _, path in sample_photos()]
    items = []
    for i in range(n):
        img = photos[i % len(photos)]
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.6, 1)), int(h * rng.uniform(0.6, 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = img.crop((x, y, x + cw, y + ch))
        crop.thumbnail((size, size), Image.Resampling.LANCZOS)
        path = folder / f"{i:05d}.jpg"
        crop.save(path, quality=90)
        items.append(Item(id=f"b:{i}", path=path))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="images per hash")
    parser.add_argument("--n-slow", type=int, default=120, help="images for crop-resistant")
    parser.add_argument("--size", type=int, default=512, help="longest side of the images")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hashes", nargs="*", default=list(HASHES))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        items = make_images(folder, args.n, args.size, seed=0)
        decoded = [Image.open(it.path).convert("RGB") for it in items[:100]]
        print(f"{len(items)} JPEG images, longest side {args.size}px, "
              f"{args.workers} worker processes")
        print(f"{'hash':16s} {'store img/s':>12s} {'bare img/s (1 proc)':>20s}")
        for name in args.hashes:
            cls = registry.get(name)
            ex = cls(cls.Options())
            subset = items[: args.n_slow] if name == "crop-resistant" else items
            start = time.perf_counter()
            got = extract_features(ex, subset, cache_dir=Path(tmp) / f"cache-{name}",
                                   dataset_fingerprint="bench", workers=args.workers,
                                   progress=False)
            store_rate = len(got.kept) / (time.perf_counter() - start)
            sample = decoded[:20] if name == "crop-resistant" else decoded
            start = time.perf_counter()
            ex.extract(sample)
            bare_rate = len(sample) / (time.perf_counter() - start)
            print(f"{name:16s} {store_rate:12.0f} {bare_rate:20.0f}")


if __name__ == "__main__":
    main()
