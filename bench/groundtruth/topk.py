"""Running top-k selection over blocks of float32 scores, ties to the lower id.

Each candidate is one uint64 key, (order-preserving score bits << 32) | id, so a
single ``np.partition`` selects by score and then by id: the ground truth is the
same on every machine even for duplicate vectors. After the first block only the
few scores below a query's current worst candidate survive one comparison
(``_sparse``), which keeps selection cheap next to the matrix products.
"""

from __future__ import annotations

import numpy as np

#: columns of the first database block selected densely to seed the thresholds
SEED_COLUMNS = 256

_SENTINEL = np.uint64(np.iinfo(np.uint64).max)
_ID_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


def _ordered(scores: np.ndarray) -> np.ndarray:
    """Map float32 to uint32 so that integer order equals float order (no NaN here)."""
    bits = scores.view(np.uint32)
    return np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))


def _unordered(keys_hi: np.ndarray) -> np.ndarray:
    neg = (keys_hi & np.uint32(0x80000000)) == 0
    bits = np.where(neg, ~keys_hi, keys_hi & np.uint32(0x7FFFFFFF)).astype(np.uint32)
    return bits.view(np.float32)


def _keys(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(score, id) packed in one uint64, so one np.partition selects by score then id.

    Adding +0.0 turns -0.0 into +0.0, whose bits differ although the floats are equal.
    """
    ordered = _ordered(np.add(scores, np.float32(0.0), dtype=np.float32))
    return (ordered.astype(np.uint64) << _SHIFT) | ids.astype(np.uint64)


def _merge(top: np.ndarray, new: np.ndarray) -> np.ndarray:
    both = np.concatenate([top, new], axis=1)
    m = top.shape[1]
    return np.partition(both, m - 1, axis=1)[:, :m]


def _dense(top: np.ndarray, scores: np.ndarray, start: int) -> np.ndarray:
    m = top.shape[1]
    keys = _keys(scores, np.arange(start, start + scores.shape[1], dtype=np.uint64)[None, :])
    if keys.shape[1] > m:
        keys = np.partition(keys, m - 1, axis=1)[:, :m]
    return _merge(top, keys)


def _select(top: np.ndarray, scores: np.ndarray, start: int, buf: np.ndarray) -> np.ndarray:
    """Merge one block of float32 scores (rows = queries) into the running top keys.

    ``buf`` is a reusable bool buffer of at least ``scores.size`` elements: fresh
    multi-megabyte arrays per block cost measurable page faults.
    """
    width = scores.shape[1]
    if not (top.max(axis=1) == _SENTINEL).any():
        return _sparse(top, scores, start, buf)
    # First block: seed the thresholds densely from a few columns, then widen the
    # sparse steps geometrically as the thresholds tighten.
    step = min(width, max(SEED_COLUMNS, 4 * top.shape[1]))
    top = _dense(top, scores[:, :step], start)
    pos = step
    while pos < width:
        step *= 4
        top = _select(top, scores[:, pos : pos + step], start + pos, buf)
        pos += step
    return top


def _sparse(top: np.ndarray, scores: np.ndarray, start: int, buf: np.ndarray) -> np.ndarray:
    rows_n, width = scores.shape
    # Strict '<': an equal score from this block has a larger id than the worst kept one.
    threshold = _unordered((top.max(axis=1) >> _SHIFT).astype(np.uint32))
    np.less(scores, threshold[:, None], out=buf[: scores.size].reshape(scores.shape))
    flat = _true_positions(buf[: scores.size])
    count = len(flat)
    if count == 0:
        return top
    if count > scores.size // 8:  # adversarial order: a dense partition is cheaper
        return _dense(top, scores, start)
    rows, cols = np.divmod(flat, width)
    per_row = np.bincount(rows, minlength=rows_n)
    offsets = np.cumsum(per_row) - per_row
    padded = np.full((rows_n, int(per_row.max())), _SENTINEL, dtype=np.uint64)
    padded[rows, np.arange(count) - offsets[rows]] = _keys(
        scores.reshape(-1)[flat] if scores.flags.c_contiguous else scores[rows, cols],
        cols.astype(np.uint64) + np.uint64(start),
    )
    return _merge(top, padded)


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a sparse 1-D bool array, scanning 8 bytes at a time.

    After the first block only a few scores in a million pass the threshold; finding
    the non-zero uint64 words first reads the mask 8x faster than testing each byte.
    """
    whole = len(mask) // 8 * 8
    # (a != 0 pass then a bool nonzero is ~2x faster than np.flatnonzero on uint64)
    words = np.flatnonzero(mask[:whole].view(np.uint64) != 0)
    hits = np.flatnonzero(mask[:whole].reshape(-1, 8)[words])
    flat = words[hits // 8] * 8 + hits % 8
    if whole < len(mask):
        flat = np.concatenate([flat, whole + np.flatnonzero(mask[whole:])])
    return flat
