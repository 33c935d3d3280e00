"""Our own LSH: sign random projections in several hash tables, with exact re-ranking.

Each of ``n_tables`` tables hashes a vector to the signs of ``n_bits`` random
projections, packed into one int64 bucket key. A query collects every database
row that shares a bucket with it in any table (and, with multi-probe, the
buckets within Hamming distance ``probe_radius`` of its key), then re-ranks
those candidates by exact distance. This is the classic scheme of the LSH
studies the harness reproduces; Faiss's ``IndexLSH`` (factory ``LSH...``) is a
different design - one long code per vector, scanned exhaustively by Hamming
distance - so the two can be compared on recall against candidates examined.

Everything is vectorised: keys are packed with one matrix product per row
block, each table is a sorted key array with bucket offsets, and candidate
lookup is a ``searchsorted`` over all (query, probe) keys of a table at once.

``thresholds: median`` (default) splits each projection at its median over the
database instead of at zero, so buckets stay balanced when the data are not
centred on the origin (Faiss calls this ``train_thresholds``); ``zero`` is
textbook sign random projection.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms._numpy_knn import exact_knn, gather_ranges, rerank, sq_norms
from bench.algorithms.base import Backend
from bench.core.errors import BenchError

MAX_PROBES = 100_000  # buckets per table per query; beyond this a full scan is cheaper
_ROWS_PER_BLOCK = 1 << 16
_PAIR_BUDGET = 1 << 24  # candidate pairs gathered per block of queries


def probe_masks(n_bits: int, radius: int) -> np.ndarray:
    """XOR masks of every bit pattern with at most ``radius`` bits set (0 first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(n_bits), r))
    return np.array(masks, dtype=np.int64)


@register("lsh")
class LSHBackend(Backend):
    metrics = ("euclidean", "angular", "ip")
    query_params_doc = {
        "probe_radius": "multi-probe: also visit buckets within this Hamming distance of "
        "the query's key in every table (0 = its own bucket only)",
        "fallback": "what to do when fewer than k candidates are found: 'pad' returns "
        "fewer results (ids -1), 'scan' completes them by an exact full scan",
    }
    accurate_params = {
        "build": {"n_bits": 8, "n_tables": 16},
        "query": {"probe_radius": 2, "fallback": "scan"},
    }

    def __init__(
        self,
        metric: str,
        dim: int,
        *,
        n_bits: int = 16,
        n_tables: int = 8,
        thresholds: str = "median",
        seed: int = 42,
    ) -> None:
        super().__init__(metric, dim)
        if not 1 <= n_bits <= 62:
            raise BenchError(f"lsh: build parameter n_bits must be in 1..62, got {n_bits}")
        self.require_at_least("build", "n_tables", n_tables, 1)
        if thresholds not in ("median", "zero"):
            raise BenchError(
                f"lsh: build parameter thresholds must be 'median' or 'zero', got {thresholds!r}"
            )
        self.n_bits = n_bits
        self.n_tables = n_tables
        self.thresholds = thresholds
        self.seed = seed
        self.probe_radius = 0
        self.fallback = "pad"
        self._masks = probe_masks(n_bits, 0)
        rng = np.random.default_rng(seed)
        self._planes = rng.standard_normal((dim, n_tables * n_bits)).astype(np.float32)
        self._offsets = np.zeros(n_tables * n_bits, dtype=np.float32)
        self._powers = (np.int64(1) << np.arange(n_bits, dtype=np.int64)).astype(np.int64)
        self._data: np.ndarray | None = None
        self._norms: np.ndarray | None = None
        self._tables: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._bucket_size = 0.0
        self._stats = np.zeros(3, dtype=np.int64)  # queries, candidates, full scans

    # -- hashing --------------------------------------------------------------
    def _keys(self, x: np.ndarray) -> np.ndarray:
        """(n, n_tables) int64 bucket keys."""
        bits = (x @ self._planes) > self._offsets
        bits = bits.reshape(len(x), self.n_tables, self.n_bits)
        return bits.astype(np.int64) @ self._powers

    def build(self, data: np.ndarray) -> None:
        n = len(data)
        if self.thresholds == "median" and n:
            sample = data[:: max(1, n // 100_000)]  # a strided sample: exact enough, bounded
            self._offsets = np.median(sample @ self._planes, axis=0).astype(np.float32)
        keys = np.empty((n, self.n_tables), dtype=np.int64)
        for s in range(0, n, _ROWS_PER_BLOCK):
            keys[s : s + _ROWS_PER_BLOCK] = self._keys(data[s : s + _ROWS_PER_BLOCK])
        self._tables = []
        self._bucket_size = 0.0
        for t in range(self.n_tables):
            order = np.argsort(keys[:, t], kind="stable")
            uniq, starts, counts = np.unique(keys[order, t], return_index=True,
                                             return_counts=True)
            id_dtype = np.int32 if n < 2**31 else np.int64
            self._tables.append((uniq, starts, counts, order.astype(id_dtype)))
            # size-biased mean: the bucket a random point (and so a query) falls into
            self._bucket_size += float((counts.astype(np.float64) ** 2).sum()) / max(n, 1)
        self._bucket_size /= self.n_tables
        self._data = data
        self._norms = sq_norms(data) if self.metric == "euclidean" else None

    def set_query_params(
        self, *, probe_radius: int | None = None, fallback: str | None = None, **unknown: Any
    ) -> None:
        if unknown:
            raise BenchError(
                f"lsh: unknown query parameter(s) {sorted(unknown)}; "
                f"expected: {', '.join(self.query_params_doc)}"
            )
        if probe_radius is not None:
            if not 0 <= probe_radius <= self.n_bits:
                raise BenchError(
                    f"lsh: query parameter probe_radius must be in 0..n_bits={self.n_bits}, "
                    f"got {probe_radius}"
                )
            total = sum(comb(self.n_bits, r) for r in range(probe_radius + 1))
            if total > MAX_PROBES:
                raise BenchError(
                    f"lsh: probe_radius={probe_radius} with n_bits={self.n_bits} means "
                    f"{total} buckets per table (limit {MAX_PROBES}); use a smaller radius"
                )
            masks = probe_masks(self.n_bits, probe_radius)
            self.probe_radius = probe_radius
            self._masks = masks
        if fallback is not None:
            if fallback not in ("pad", "scan"):
                raise BenchError(
                    f"lsh: query parameter fallback must be 'pad' or 'scan', got {fallback!r}"
                )
            self.fallback = fallback
        self._stats[:] = 0

    # -- search ---------------------------------------------------------------
    def _lookup(self, qkeys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per table: (query row, bucket start, bucket size) of every non-empty probed bucket."""
        hits = []
        rows = np.arange(len(qkeys))
        for t, (uniq, starts, counts, _) in enumerate(self._tables):
            if len(uniq) == 0:
                hits.append((rows[:0], starts, counts))
                continue
            probes = (qkeys[:, t, None] ^ self._masks[None, :]).ravel()
            pos = np.searchsorted(uniq, probes)
            pos[pos == len(uniq)] = 0
            found = uniq[pos] == probes
            hit_pos = pos[found]
            q = np.repeat(rows, len(self._masks))[found]
            hits.append((q, starts[hit_pos], counts[hit_pos]))
        return hits

    def _search_block(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        assert self._data is not None, "build() first"
        hits = self._lookup(self._keys(queries))
        q_parts, id_parts = [], []
        for (q, starts, counts), (_, _, _, order) in zip(hits, self._tables, strict=True):
            q_parts.append(np.repeat(q, counts))
            id_parts.append(order[gather_ranges(starts, counts)])
        q_idx = np.concatenate(q_parts)
        ids = np.concatenate(id_parts).astype(np.int64)
        dist, out, n_cand = rerank(self._data, self._norms, queries, q_idx, ids, k, self.metric)
        scans = 0
        if self.fallback == "scan":
            short = np.flatnonzero(n_cand < min(k, len(self._data)))
            if len(short):
                dist[short], out[short] = exact_knn(
                    self._data, self._norms, queries[short], k, self.metric
                )
                n_cand[short] = len(self._data)
                scans = len(short)
        return dist, out, n_cand, scans

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = len(queries)
        # bound the candidate pairs held at once: size query blocks from bucket sizes
        step = m
        if m > 1:
            per_query = max(1.0, self._bucket_size * len(self._masks) * self.n_tables)
            step = int(max(1, min(m, _PAIR_BUDGET // per_query)))
        if step >= m:
            dist, ids, n_cand, scans = self._search_block(queries, k)
        else:
            parts = [self._search_block(queries[s : s + step], k) for s in range(0, m, step)]
            dist = np.concatenate([p[0] for p in parts])
            ids = np.concatenate([p[1] for p in parts])
            n_cand = np.concatenate([p[2] for p in parts])
            scans = sum(p[3] for p in parts)
        self._stats += (m, int(n_cand.sum()), scans)
        return dist, ids

    def extra_metrics(self) -> dict[str, float]:
        """Averages over every search since the last ``set_query_params``."""
        queries, candidates, scans = (int(v) for v in self._stats)
        if queries == 0:
            return {}
        return {
            "candidates_per_query": candidates / queries,
            "full_scan_fraction": scans / queries,
        }

    def index_bytes(self) -> int | None:
        """Hash tables + hyperplanes + the vectors kept for exact re-ranking."""
        if self._data is None:
            return None
        tables = sum(a.nbytes for table in self._tables for a in table)
        norms = 0 if self._norms is None else self._norms.nbytes
        return int(tables + self._planes.nbytes + self._offsets.nbytes + self._data.nbytes
                   + norms)
