"""Exact top-k selection in torch, shared by the torch backend and GPU ground truth.

``torch.topk`` picks among values equal to the k-th arbitrarily; our exact paths
break ties towards the lower database id, so the selection here is every entry
strictly below the k-th value plus the first (lowest-column) entries equal to it,
exactly k per row, and blocks merge by a stable sort in which earlier (lower-id)
candidates come first.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bench.core.errors import BenchError

#: score elements per block (queries x database rows): bounds the temporary memory
BLOCK_ELEMENTS = 1 << 24
#: xor bytes per block for Hamming (queries x rows x bytes)
HAMMING_BLOCK_BYTES = 1 << 26


def resolve_device(device: str) -> str:
    """``auto``: cuda when torch sees a GPU, else cpu; ``cuda`` without one is refused."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} requested but torch sees no CUDA GPU")
    return device


def _tensor(array: np.ndarray) -> Any:
    """A tensor over ``array`` without a copy. Read-only memmaps are fine: the tensors
    made here are only read (or copied into device memory), never written."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class DeviceIndex:
    """A database on a torch device, searched exactly by blocked products and top-k.

    Distances: euclidean (L2), angular (1 - dot on normalised rows), ip (-dot),
    hamming (popcount of xor through a 256-entry table on the device).
    """

    def __init__(self, data: np.ndarray, metric: str, device: str,
                 dtype: str = "float32") -> None:
        import torch

        self.metric, self.device = metric, device
        self.norms: Any = None
        self.table: Any = None
        if metric == "hamming":
            self.data = _tensor(np.ascontiguousarray(data)).to(device)
            self.table = torch.tensor([bin(i).count("1") for i in range(256)],
                                      dtype=torch.int32, device=device)
            return
        # copied in row blocks: a memory-mapped database is never materialised twice
        out = torch.empty((len(data), data.shape[1]), dtype=getattr(torch, dtype),
                          device=device)
        step = max(1, BLOCK_ELEMENTS // max(1, data.shape[1]))
        for lo in range(0, len(data), step):
            block = _tensor(np.ascontiguousarray(data[lo: lo + step], dtype=np.float32))
            out[lo: lo + step] = block.to(device, dtype=out.dtype)
        self.data = out
        if metric == "euclidean":
            self.norms = (out.float() ** 2).sum(dim=1)

    def nbytes(self) -> int:
        extra = 0 if self.norms is None else self.norms.numel() * self.norms.element_size()
        return int(self.data.numel() * self.data.element_size() + extra)

    def _scores(self, q: Any, lo: int, hi: int) -> Any:
        """float32 distances (ascending is better) of a query block to rows lo:hi."""
        import torch

        x = self.data[lo:hi]
        if self.metric == "hamming":
            xor = torch.bitwise_xor(q[:, None, :], x[None, :, :]).long()
            return self.table[xor].sum(dim=2).float()
        dot = (q @ x.T).float()
        if self.metric == "euclidean":
            qn = (q.float() ** 2).sum(dim=1, keepdim=True)
            return (qn + self.norms[lo:hi][None, :] - 2.0 * dot).clamp_min_(0.0)
        if self.metric == "angular":
            return 1.0 - dot
        return -dot

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances float32, ids int64) of shape (nq, k), padded with -1 / inf."""
        import torch

        n = len(self.data)
        kk = min(k, n)
        if self.metric == "hamming":
            q_all = _tensor(np.ascontiguousarray(queries)).to(self.device)
            db_step = min(n, 4096)
            rows = max(1, HAMMING_BLOCK_BYTES // (max(1, self.data.shape[1]) * db_step))
        else:
            q_all = _tensor(np.ascontiguousarray(queries, dtype=np.float32)).to(
                self.device, dtype=self.data.dtype)
            rows = max(1, min(len(queries), 1024))
            db_step = max(kk, BLOCK_ELEMENTS // rows)
        out_d, out_i = [], []
        with torch.inference_mode():
            for q0 in range(0, len(queries), rows):
                q = q_all[q0: q0 + rows]
                best = (torch.empty((len(q), 0), device=self.device),
                        torch.empty((len(q), 0), dtype=torch.long, device=self.device))
                for lo in range(0, n, db_step):
                    block = block_topk(torch, self._scores(q, lo, min(n, lo + db_step)), kk)
                    best = merge_topk(torch, best, block, lo, kk)
                # the copy to the host waits for the kernels: a clock read after this
                # call never stops before the GPU has finished
                out_d.append(best[0].cpu())
                out_i.append(best[1].cpu())
        dist = torch.cat(out_d).numpy().astype(np.float32)
        ids = torch.cat(out_i).numpy().astype(np.int64)
        if self.metric == "euclidean":
            dist = np.sqrt(dist)
        if kk < k:
            pad_d = np.full((len(ids), k - kk), np.inf, dtype=np.float32)
            pad_i = np.full((len(ids), k - kk), -1, dtype=np.int64)
            dist, ids = np.hstack([dist, pad_d]), np.hstack([ids, pad_i])
        return dist, ids



def merge_topk(torch: Any, best: tuple[Any, Any], block: tuple[Any, Any], offset: int,
               k: int) -> tuple[Any, Any]:
    """The running top-k (distances, ids) merged with a block's, ties to the lower id."""
    cand_d = torch.cat([best[0], block[0]], dim=1)
    cand_i = torch.cat([best[1], block[1] + offset], dim=1)
    # stable: equal distances keep the earlier, lower-id candidate first
    order = torch.sort(cand_d, dim=1, stable=True).indices[:, :k]
    return torch.gather(cand_d, 1, order), torch.gather(cand_i, 1, order)


def block_topk(torch: Any, scores: Any, k: int) -> tuple[Any, Any]:
    """The k smallest scores of each row, ties to the lower column, sorted by (score, id).

    topk alone picks arbitrarily among values equal to the k-th; the selection here is
    every entry strictly below the k-th value plus the first (lowest-column) entries
    equal to it, exactly k per row.
    """
    k = min(k, scores.shape[1])
    kth = torch.topk(scores, k, dim=1, largest=False, sorted=True).values[:, -1:]
    below = scores < kth
    ties = scores == kth
    need = k - below.sum(dim=1, keepdim=True)
    chosen = below | (ties & (torch.cumsum(ties, dim=1) <= need))
    # exactly k ones per row: their columns in ascending order
    cols = torch.sort(torch.topk(chosen.to(torch.int8), k, dim=1).indices, dim=1).values
    vals = torch.gather(scores, 1, cols)
    order = torch.sort(vals, dim=1, stable=True).indices
    return torch.gather(vals, 1, order), torch.gather(cols, 1, order)


def exact_knn_device(database: np.ndarray, queries: np.ndarray, k: int, metric: str,
                     device: str, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Exact ground truth with the candidate search on a torch device (a GPU).

    The device finds the k + margin nearest candidates in float32; each candidate is
    then re-scored in float64 on the host (``exact_distances``, the same re-scoring as
    the CPU path) and the k best kept by (distance, id). A true neighbour is missed
    only if float32 rounding moved it past ``margin`` others, far beyond the 1e-6
    relative error of a float32 distance.
    """
    from bench.core.distances import BLOCKWISE_METRICS
    from bench.groundtruth.exact import exact_distances

    if metric in BLOCKWISE_METRICS:
        raise BenchError(f"ground_truth.device {device}: metric {metric} has no device path; "
                         "use ground_truth: {device: cpu}")
    n = len(database)
    wide = min(n, k + (0 if metric == "hamming" else margin))  # Hamming is exact in int
    index = DeviceIndex(database, metric, resolve_device(device))
    _, cand = index.search(queries, wide)
    del index
    dist = exact_distances(database, queries, cand, metric)
    dist = np.where(cand < 0, np.inf, dist)
    order = np.lexsort((cand, dist), axis=1)[:, :k]
    ids = np.take_along_axis(cand, order, axis=1)
    out = np.take_along_axis(dist, order, axis=1).astype(np.float32)
    if ids.shape[1] < k:  # fewer rows than k: padded like the CPU path
        pad = k - ids.shape[1]
        out = np.hstack([out, np.full((len(ids), pad), np.inf, dtype=np.float32)])
        ids = np.hstack([ids, np.full((len(ids), pad), -1, dtype=np.int64)])
    return out, ids
