"""Perceptual hashes through imagehash: ahash, phash, dhash, whash, colorhash, crop-resistant.

Codes are imagehash's own bit arrays, flattened row-major and packed 8 bits per
byte, most significant bit first (``np.packbits``), which is the layout Faiss
binary indexes expect for Hamming distances. A bit count that is not a multiple
of 8 (colorhash: 14 * binbits) is padded with zero bits, which leaves every
Hamming distance unchanged; ``dim`` then reports the padded width.

``as_float: true`` yields the same bits as 0/1 float32 vectors (unpadded), for
experiments that want another metric on the hashes.

crop-resistant: imagehash segments the image and hashes each segment's bounding
box with dhash. A fixed-length code needs a fixed number of segments, so the
code is the dhash of the ``segments`` largest segments, largest first,
concatenated; an image with fewer segments repeats its hashes cyclically
(one found segment fills every slot). It is about 100x slower than the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from bench.core.options import StrictOptions
from bench.extractors import register
from bench.extractors.base import Extractor


def _imagehash() -> Any:
    try:
        import imagehash
    except ImportError:
        from bench.core.errors import MissingDependencyError

        raise MissingDependencyError("imagehash", "images", "perceptual hashes") from None
    return imagehash


class HashOptions(StrictOptions):
    hash_size: int = Field(8, ge=2, le=64, description="side of the bit grid: hash_size**2 bits")
    as_float: bool = Field(False, description="0/1 float32 vectors instead of packed codes")


class _ImageHash(Extractor):
    """Shared plumbing: bits per image -> packed codes (or floats)."""

    Options: ClassVar[type[StrictOptions]] = HashOptions
    modality: ClassVar[str] = "image"
    family: ClassVar[str] = "binary"

    def __init__(self, options: StrictOptions) -> None:
        super().__init__(options)
        if getattr(options, "as_float", False):
            # An instance attribute: these features are float vectors for L2 / cosine.
            self.family = "float"  # type: ignore[misc]

    @property
    def bits(self) -> int:
        size = self.options.hash_size  # type: ignore[attr-defined]
        return size * size

    @property
    def dim(self) -> int:
        if self.family == "float":
            return self.bits
        return -(-self.bits // 8) * 8

    def fingerprint(self) -> dict[str, Any]:
        import PIL

        # Bits depend on imagehash's algorithm and Pillow's resampling.
        return {**super().fingerprint(), "imagehash": _imagehash().__version__,
                "pillow": PIL.__version__}

    def hash_bits(self, image: Any) -> np.ndarray:
        """The imagehash bit array of one image, flattened (bool, length ``bits``)."""
        raise NotImplementedError

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        if not batch:
            width = self.bits if self.family == "float" else self.dim // 8
            return np.zeros((0, width), np.float32 if self.family == "float" else np.uint8)
        bits = np.stack([self.hash_bits(img) for img in batch])
        if self.family == "float":
            return bits.astype(np.float32)
        return np.packbits(bits, axis=1)


@register("ahash")
class AverageHash(_ImageHash):
    """aHash: grey hash_size x hash_size thumbnail against its mean."""

    def hash_bits(self, image: Any) -> np.ndarray:
        return _imagehash().average_hash(image, hash_size=self.options.hash_size).hash.ravel()


class PHashOptions(HashOptions):
    highfreq_factor: int = Field(4, ge=1, description="DCT input side = hash_size * this")


@register("phash")
class PerceptualHash(_ImageHash):
    """pHash: top-left block of the DCT of a grey thumbnail against its median."""

    Options = PHashOptions

    def hash_bits(self, image: Any) -> np.ndarray:
        o = self.options
        return _imagehash().phash(image, hash_size=o.hash_size,
                                  highfreq_factor=o.highfreq_factor).hash.ravel()


@register("dhash")
class DifferenceHash(_ImageHash):
    """dHash: horizontally adjacent pixels of a (hash_size+1) x hash_size grey thumbnail."""

    def hash_bits(self, image: Any) -> np.ndarray:
        return _imagehash().dhash(image, hash_size=self.options.hash_size).hash.ravel()


class WHashOptions(HashOptions):
    mode: Literal["haar", "db4"] = "haar"

    @field_validator("hash_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"whash needs a power of 2, got {value}")
        return value


@register("whash")
class WaveletHash(_ImageHash):
    """wHash: Haar (or db4) wavelet low band against its median."""

    Options = WHashOptions

    def hash_bits(self, image: Any) -> np.ndarray:
        o = self.options
        return _imagehash().whash(image, hash_size=o.hash_size, mode=o.mode).hash.ravel()


class ColorHashOptions(StrictOptions):
    binbits: int = Field(3, ge=1, le=16, description="bits per histogram bin: 14 * binbits bits")
    as_float: bool = False


@register("colorhash")
class ColorHash(_ImageHash):
    """colorhash: HSV histogram (black, grey, faint and bright hue bins), 14 * binbits bits."""

    Options = ColorHashOptions

    @property
    def bits(self) -> int:
        return 14 * self.options.binbits

    def hash_bits(self, image: Any) -> np.ndarray:
        return _imagehash().colorhash(image, binbits=self.options.binbits).hash.ravel()


class CropResistantOptions(HashOptions):
    segments: int = Field(4, ge=1, le=64, description="largest segments hashed and concatenated")
    segment_threshold: int = Field(128, ge=0, le=255)
    min_segment_size: int = Field(500, ge=1)
    segmentation_image_size: int = Field(300, ge=16)


@register("crop-resistant")
class CropResistantHash(_ImageHash):
    """Crop-resistant hash: dhash of the largest segments, concatenated (see module doc)."""

    Options = CropResistantOptions

    @property
    def bits(self) -> int:
        o = self.options
        return o.segments * o.hash_size * o.hash_size

    def hash_bits(self, image: Any) -> np.ndarray:
        ih = _imagehash()
        o = self.options
        size = o.hash_size

        def segment_hash(img: Any) -> Any:
            return ih.dhash(img, hash_size=size)

        multi = ih.crop_resistant_hash(
            image, hash_func=segment_hash, limit_segments=o.segments,
            segment_threshold=o.segment_threshold, min_segment_size=o.min_segment_size,
            segmentation_image_size=o.segmentation_image_size,
        )
        found = [h.hash.ravel() for h in multi.segment_hashes]
        return np.concatenate([found[i % len(found)] for i in range(o.segments)])
