"""Content fingerprints that key every cache and let two results be compared honestly.

Arrays up to 256 MiB are hashed in full; larger ones (usually memory-mapped
files) by shape, dtype and 64 evenly spaced 1 MiB slices, which is enough to
tell datasets apart without reading tens of gigabytes on every run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

FULL_HASH_LIMIT = 256 << 20
SLICES = 64
SLICE_BYTES = 1 << 20


def fingerprint_array(array: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.shape}|{array.dtype.str}".encode())
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    if flat.nbytes <= FULL_HASH_LIMIT:
        h.update(memoryview(flat))
    else:
        starts = np.linspace(0, flat.nbytes - SLICE_BYTES, SLICES).astype(np.int64)
        for s in starts:
            h.update(memoryview(flat[s : s + SLICE_BYTES]))
    return h.hexdigest()


def fingerprint_obj(obj: Any) -> str:
    """Fingerprint of a JSON-serialisable object (options, parameters)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
