"""Distances for clustering, within a memory budget.

Two paths give the same neighbourhoods:

- **dense**: the condensed distance matrix (scipy ``pdist``, float64, n(n-1)/2
  entries). Hierarchical clustering needs it; it is built only when it and
  linkage's working copy fit ``clustering.memory_budget_mb``.
- **sparse**: a radius-neighbour graph (CSR, only pairs within eps) from exact
  Faiss range search, never holding all pairs. DBSCAN needs nothing more.

Why Faiss range search rather than a registered backend: the backend contract is
k-NN, and an eps-ball can hold any number of points; a k-NN result truncates it
and an approximate index drops members, either of which changes DBSCAN's labels
silently. The flat Faiss indexes are the exact search the harness already trusts
for its ground-truth sanity check. Faiss answers strictly inside the radius in
float32, so the radius gets a little slack and every candidate pair is then
re-measured in float64 and kept only when its distance is <= eps, the rule
scikit-learn's DBSCAN applies to the dense path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.core.errors import BenchError

#: query rows per Faiss range search call; bounds Faiss's own result buffers
RANGE_BLOCK = 2048
#: bytes per stored graph edge: float64 distance + int32 column + the row's share
EDGE_BYTES = 16
#: rows per block when a block of a distance matrix is computed from features
ROW_BLOCK = 256


class BudgetExceeded(BenchError):
    """A distance representation would not fit clustering.memory_budget_mb."""


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def condensed_bytes(n: int) -> int:
    return 8 * n * (n - 1) // 2


def dense_path_bytes(n: int) -> int:
    """Peak of the dense path: the condensed matrix plus linkage's float64 working copy."""
    return 2 * condensed_bytes(n)


class Space:
    """Items under one clustering metric: euclidean, cosine (1 - cos) or hamming (bits).

    ``features`` are the harness's prepared features: float32 rows, or packed uint8
    codes for hamming experiments. Euclidean on codes means euclidean on the unpacked
    0/1 bits (= sqrt of the Hamming distance), which is what Ward and k-means need.
    """

    def __init__(self, features: np.ndarray, metric: str) -> None:
        self.metric = metric
        self.binary = features.dtype == np.uint8
        if metric == "hamming":
            if not self.binary:
                raise BenchError("metric hamming needs packed uint8 codes")
            self.codes = np.ascontiguousarray(features)
            self.bits = self.codes.shape[1] * 8
            self.vectors = None
            return
        vectors = np.unpackbits(features, axis=1) if self.binary else features
        vectors = np.asarray(vectors, dtype=np.float64)
        if metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            if (norms == 0).any():
                row = int(np.nonzero(norms[:, 0] == 0)[0][0])
                raise BenchError(f"row {row} is a zero vector, which has no cosine distance")
            vectors = vectors / norms
        self.vectors = np.ascontiguousarray(vectors)

    def __len__(self) -> int:
        return len(self.codes if self.vectors is None else self.vectors)

    # --- observation vectors (k-means, centroids) -----------------------------------
    def observations(self) -> np.ndarray:
        """Real vectors whose squared euclidean distances k-means minimises.

        For hamming these are the 0/1 bits: their squared euclidean distance is
        exactly the Hamming distance.
        """
        if self.vectors is None:
            return np.unpackbits(self.codes, axis=1).astype(np.float32)
        return self.vectors.astype(np.float32)

    # --- distances -------------------------------------------------------------------
    def condensed(self) -> np.ndarray:
        """All pairwise distances, scipy's condensed order (float64)."""
        from scipy.spatial.distance import pdist

        if self.vectors is None:
            return _hamming_condensed(self.codes)
        if self.metric == "cosine":
            return np.maximum(pdist(self.vectors, "cosine"), 0.0)
        return pdist(self.vectors, "euclidean")

    def paired(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Distances of the pairs (i[t], j[t]), computed as ``pdist`` does (float64)."""
        if self.vectors is None:
            return np.bitwise_count(self.codes[i] ^ self.codes[j]).sum(axis=1).astype(np.float64)
        a, b = self.vectors[i], self.vectors[j]
        if self.metric == "cosine":
            return np.maximum(1.0 - np.einsum("ij,ij->i", a, b), 0.0)
        return np.sqrt(np.einsum("ij,ij->i", a - b, a - b))

    def block(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Distance matrix between two sets of rows (cols: every row when None)."""
        if self.vectors is None:
            b = self.codes if cols is None else self.codes[cols]
            x = self.codes[rows]
            out = np.empty((len(x), len(b)), dtype=np.float64)
            for s in range(0, len(x), 64):  # bounds the (64, n, bytes) xor temporary
                out[s : s + 64] = np.bitwise_count(x[s : s + 64, None, :] ^ b[None]).sum(-1)
            return out
        b = self.vectors if cols is None else self.vectors[cols]
        a = self.vectors[rows]
        if self.metric == "cosine":
            return np.clip(1.0 - a @ b.T, 0.0, 2.0)
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return np.sqrt(np.maximum(sq, 0.0))

    # --- centroids ---------------------------------------------------------------------
    def centroids(self, rows: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
        """One centroid per label 0..n_labels-1 of ``rows`` in this metric's own sense.

        euclidean: the mean; cosine: the mean direction; hamming: the bitwise
        majority (the code minimising the sum of Hamming distances to the members).
        """
        if self.vectors is None:
            obs = np.unpackbits(self.codes[rows], axis=1).astype(np.float64)
        else:
            obs = self.vectors[rows]
        sums = np.zeros((n_labels, obs.shape[1]))
        np.add.at(sums, labels, obs)
        counts = np.bincount(labels, minlength=n_labels).astype(np.float64)
        means = sums / np.maximum(counts, 1)[:, None]
        if self.vectors is None:
            return np.packbits(means >= 0.5, axis=1)
        if self.metric == "cosine":
            norms = np.linalg.norm(means, axis=1, keepdims=True)
            means = means / np.where(norms == 0, 1.0, norms)
        return means

    def to_centroids(self, rows: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """Distance of each row to centroids[t] (paired)."""
        if self.vectors is None:
            return np.bitwise_count(self.codes[rows] ^ centroids).sum(axis=1).astype(np.float64)
        a = self.vectors[rows]
        if self.metric == "cosine":
            return np.maximum(1.0 - np.einsum("ij,ij->i", a, centroids), 0.0)
        return np.sqrt(np.einsum("ij,ij->i", a - centroids, a - centroids))

    # --- radius graphs ---------------------------------------------------------------
    def radius_graph(self, eps: float, budget_bytes: int, threads: int = 1) -> Any:
        """Sparse path: CSR graph of every pair within eps (self loops included), by
        exact Faiss range search; raises BudgetExceeded when the graph outgrows the budget."""
        import faiss

        faiss.omp_set_num_threads(threads)
        n = len(self)
        if self.vectors is None:
            index: Any = faiss.IndexBinaryFlat(self.bits)
            data: np.ndarray = self.codes
            radius: Any = int(math.floor(eps)) + 1  # integer distances, strict "<"
        else:
            data = self.vectors.astype(np.float32)
            if self.metric == "cosine":
                index = faiss.IndexFlatIP(data.shape[1])
                radius = float(1.0 - eps - 1e-4)  # similarity strictly above
            else:
                index = faiss.IndexFlatL2(data.shape[1])
                radius = float((eps * (1 + 1e-4) + 1e-6) ** 2)  # squared, strictly below
        index.add(data)
        rows, cols, dists = [], [], []
        edges = 0
        for start in range(0, n, RANGE_BLOCK):
            lims, _, ids = index.range_search(data[start : start + RANGE_BLOCK], radius)
            i = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
            j = ids.astype(np.int64)
            d = self.paired(i, j)
            keep = (d <= eps) & (i != j)  # self loops are added once, below
            rows.append(i[keep])
            cols.append(j[keep])
            dists.append(d[keep])
            edges += int(keep.sum())
            if edges * EDGE_BYTES > budget_bytes:
                raise BudgetExceeded(
                    f"the radius graph for eps={eps:g} passed {edges:,} edges "
                    f"({mib(edges * EDGE_BYTES)}) after {start + len(lims) - 1:,} of {n:,} rows, "
                    f"over clustering.memory_budget_mb; use a smaller eps or a larger budget")
        diag = np.arange(n, dtype=np.int64)
        return _csr(np.concatenate([*rows, diag]), np.concatenate([*cols, diag]),
                    np.concatenate([*dists, np.zeros(n)]), n)


def _hamming_condensed(codes: np.ndarray) -> np.ndarray:
    """Condensed Hamming distances, one row at a time on 64-bit words: about ten times
    faster than ``pdist(bits, "hamming")`` on unpacked bits, and exact integers."""
    n, width = codes.shape
    words = np.ascontiguousarray(np.pad(codes, ((0, 0), (0, -width % 8)))).view(np.uint64)
    out = np.empty(n * (n - 1) // 2)
    start = 0
    for i in range(n - 1):
        out[start : start + n - i - 1] = np.bitwise_count(words[i + 1 :] ^ words[i]).sum(axis=1)
        start += n - i - 1
    return out


def graph_from_condensed(condensed: np.ndarray, n: int, eps: float) -> Any:
    """Dense path: the same radius graph, read off the condensed matrix."""
    k = np.flatnonzero(condensed <= eps)
    starts = np.arange(n, dtype=np.int64)
    starts = starts * n - starts * (starts + 1) // 2  # condensed offset of row i's pairs
    i = np.searchsorted(starts, k, side="right") - 1
    j = k - starts[i] + i + 1
    d = condensed[k]
    diag = np.arange(n, dtype=np.int64)
    return _csr(np.concatenate([i, j, diag]), np.concatenate([j, i, diag]),
                np.concatenate([d, d, np.zeros(n)]), n)


def _csr(i: np.ndarray, j: np.ndarray, d: np.ndarray, n: int) -> Any:
    """CSR with explicit zeros kept (duplicates are neighbours at distance 0) and each
    row sorted by (distance, column), so both paths hand DBSCAN identical graphs."""
    from scipy.sparse import csr_matrix

    order = np.lexsort((j, d, i))
    i, j, d = i[order], j[order], d[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=n), out=indptr[1:])
    return csr_matrix((d, j.astype(np.int32), indptr), shape=(n, n))
