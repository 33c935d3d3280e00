"""Hash extractors: codes are imagehash's own bits, packed MSB first."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from skimage import data

from bench.extractors import registry


def _images() -> list[Image.Image]:
    return [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee()),
            Image.fromarray(data.camera()).convert("RGB")]


def _make(name: str, **options):
    cls = registry.get(name)
    return cls(cls.Options.model_validate(options))


REFERENCE = {
    "ahash": lambda img, n: imagehash.average_hash(img, hash_size=n),
    "phash": lambda img, n: imagehash.phash(img, hash_size=n),
    "dhash": lambda img, n: imagehash.dhash(img, hash_size=n),
    "whash": lambda img, n: imagehash.whash(img, hash_size=n),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("hash_size", [8, 16])
def test_codes_are_imagehash_bits_packed_msb_first(name: str, hash_size: int):
    ex = _make(name, hash_size=hash_size)
    images = _images()
    codes = ex.extract(images)
    bits = hash_size * hash_size
    assert ex.family == "binary" and ex.dim == bits
    assert codes.dtype == np.uint8 and codes.shape == (3, bits // 8)
    for code, img in zip(codes, images, strict=True):
        expected = REFERENCE[name](img, hash_size).hash.flatten()
        assert np.array_equal(np.unpackbits(code).astype(bool), expected)
    assert not np.array_equal(codes[0], codes[1])


def test_as_float_gives_the_same_bits_as_float32_vectors():
    images = _images()
    packed = _make("dhash").extract(images)
    ex = _make("dhash", as_float=True)
    floats = ex.extract(images)
    assert ex.family == "float" and ex.dim == 64
    assert floats.dtype == np.float32 and set(np.unique(floats)) <= {0.0, 1.0}
    assert np.array_equal(floats.astype(np.uint8), np.unpackbits(packed, axis=1))


def test_colorhash_pads_to_whole_bytes_with_zero_bits():
    ex = _make("colorhash", binbits=3)
    images = _images()
    codes = ex.extract(images)
    assert ex.dim == 48 and codes.shape == (3, 6)
    for code, img in zip(codes, images, strict=True):
        bits = np.unpackbits(code).astype(bool)
        assert np.array_equal(bits[:42], imagehash.colorhash(img, binbits=3).hash.flatten())
        assert not bits[42:].any()
    assert _make("colorhash", binbits=3, as_float=True).extract(images).shape == (3, 42)


def test_crop_resistant_concatenates_the_largest_segments():
    ex = _make("crop-resistant", segments=3)
    img = _images()[0]
    code = ex.extract([img])
    assert ex.dim == 3 * 64 and code.shape == (1, 24)
    multi = imagehash.crop_resistant_hash(img, limit_segments=3)
    found = [h.hash.flatten() for h in multi.segment_hashes]
    bits = np.unpackbits(code[0]).astype(bool).reshape(3, 64)
    for slot in range(3):
        assert np.array_equal(bits[slot], found[slot % len(found)])


def test_crop_resistant_repeats_a_single_segment():
    flat = Image.new("RGB", (64, 64), (200, 200, 200))
    code = _make("crop-resistant", segments=4).extract([flat])
    bits = np.unpackbits(code[0]).reshape(4, 64)
    assert (bits == bits[0]).all()


def test_options_are_checked_and_fingerprinted():
    with pytest.raises(ValidationError, match="power of 2"):
        registry.get("whash").Options.model_validate({"hash_size": 6})
    with pytest.raises(ValidationError):
        registry.get("dhash").Options.model_validate({"hash_sise": 8})
    a, b = _make("phash").fingerprint(), _make("phash", hash_size=16).fingerprint()
    assert a != b and a["extractor"] == "phash" and "imagehash" in a
    assert {"ahash", "phash", "dhash", "whash", "colorhash", "crop-resistant"} <= set(
        registry.names())


def test_empty_batch_has_the_right_shape():
    assert _make("ahash").extract([]).shape == (0, 8)
