"""Late fusion of two modalities, and search on a slice of the columns.

A feature set for fusion holds both modalities of each item side by side:
columns ``[:split]`` are the first (e.g. image), ``[split:]`` the second (e.g.
text). Workers only see one array per side, so the two feature sets of the
published multimodal experiments travel as one and the backend splits them.

``fusion`` builds one sub-index per modality (any registered backend, by name
and build parameters), takes each one's top-N with distances and combines them:
candidates = intersection or union of the two lists, score = w1 * d1 + w2 * d2,
final top-k by score. Calibrated weights make both modalities contribute
equally: w1 = m2 / (m1 + m2), w2 = m1 / (m1 + m2), where m is the mean over
queries of the mean top-10 distance of that modality (the multimodal tweet
retrieval study). In batch mode the mean runs over the whole query set, as
there; in single mode each call has one query, so each query is calibrated on
its own. The whole stage is one search call, so the harness times it as one run.

``slice`` searches one column range with a sub-backend: the single-modality
baselines (e.g. text query vs image features) on the very same feature set.

For ``angular`` the harness normalised whole rows; each slice is normalised
again so every sub-index sees unit vectors, as the metric requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.algorithms import register, registry
from bench.algorithms._numpy_knn import pair_distances, sq_norms
from bench.algorithms.base import Backend
from bench.core.errors import BenchError

CALIBRATION_RANKS = 10


def _sub_backend(spec: Any, metric: str, dim: int, what: str) -> Backend:
    """A backend from ``"name"`` or ``{algorithm: name, build: {...}}``."""
    if isinstance(spec, str):
        name, build = spec, {}
    elif isinstance(spec, dict) and set(spec) <= {"algorithm", "build"} and "algorithm" in spec:
        name, build = spec["algorithm"], dict(spec.get("build") or {})
    else:
        raise BenchError(f"{what}: expected a backend name or {{algorithm: name, build: {{...}}}}, "
                         f"got {spec!r}")
    if name in ("fusion", "slice"):
        raise BenchError(f"{what}: {name} cannot be nested")
    cls = registry.get(name)
    try:
        return cls(metric, dim, **build)
    except TypeError as exc:
        raise BenchError(f"{what}: bad build parameters for {name}: {exc}") from None


def _normalise(block: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    if (norms == 0).any():
        row = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise BenchError(f"{what}: row {row} is zero in this column slice, which has no angle")
    return block / norms


def _columns(data: np.ndarray, start: int, stop: int, metric: str, what: str) -> np.ndarray:
    block = np.ascontiguousarray(data[:, start:stop], dtype=np.float32)
    return _normalise(block, what) if metric == "angular" else block


@register("slice")
class SliceBackend(Backend):
    """Search columns [start:stop) with a sub-backend; query parameters pass through."""

    metrics = ("euclidean", "angular", "ip")
    open_query_params = True
    query_params_doc = {"(any)": "passed to the sub-backend"}
    accurate_params = {"build": {"start": 0, "backend": "bruteforce"}, "query": {}}

    def __init__(self, metric: str, dim: int, *, start: int = 0, stop: int | None = None,
                 backend: Any = "bruteforce") -> None:
        super().__init__(metric, dim)
        stop = dim if stop is None else stop
        if not 0 <= start < stop <= dim:
            raise BenchError(f"slice: need 0 <= start < stop <= {dim}, got start={start} "
                             f"stop={stop}")
        self.start, self.stop = start, stop
        self.exact = False  # exact on its slice, not on the whole feature set
        self.sub = _sub_backend(backend, metric, stop - start, "slice.backend")

    def set_threads(self, threads: int) -> None:
        super().set_threads(threads)
        self.sub.set_threads(threads)

    def build(self, data: np.ndarray) -> None:
        self.sub.build(_columns(data, self.start, self.stop, self.metric, "slice database"))

    def set_query_params(self, **params: Any) -> None:
        self.sub.set_query_params(**params)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sub.search(_columns(queries, self.start, self.stop, self.metric,
                                        "slice queries"), k)

    def index_bytes(self) -> int | None:
        return self.sub.index_bytes()

    def extra_metrics(self) -> dict[str, float]:
        return self.sub.extra_metrics()

    def close(self) -> None:
        self.sub.close()


@register("fusion")
class FusionBackend(Backend):
    """Late fusion of two column slices' sub-indexes (intersection / union, weighted sum)."""

    metrics = ("euclidean", "angular", "ip")
    query_params_doc = {
        "top_n": "results taken from each modality's index (default 100, at least k)",
        "combine": "intersection (in both top-N lists) or union",
        "weight": "'calibrated', or the first modality's weight w1 (w2 = 1 - w1)",
        "score": "weighted-sum (w1 d1 + w2 d2) or concatenation (the distance of the "
                 "concatenated vector, weights unused: late fusion that must equal early fusion)",
        "rescore": "recompute exact per-modality distances instead of the indexes' own",
        "first_query": "query parameters of the first sub-index",
        "second_query": "query parameters of the second sub-index",
    }
    #: union of two full top-100 lists scored as the concatenation = exact search on it
    accurate_params = {"build": {"normalize_slices": False},
                       "query": {"combine": "union", "score": "concatenation", "rescore": True}}

    def __init__(self, metric: str, dim: int, *, split: int | None = None,
                 first: Any = "bruteforce", second: Any = "bruteforce",
                 normalize_slices: bool = True) -> None:
        """``split``: columns of the first modality (default: half); ``normalize_slices``
        (angular): make each modality unit length, so each sub-index sees cosines."""
        super().__init__(metric, dim)
        split = dim // 2 if split is None else split
        if not 0 < split < dim:
            raise BenchError(f"fusion: split must lie in 1..{dim - 1} (columns of the first "
                             f"modality), got {split}")
        self.split = split
        self.normalize_slices = normalize_slices
        self.subs = (_sub_backend(first, metric, split, "fusion.first"),
                     _sub_backend(second, metric, dim - split, "fusion.second"))
        self.top_n, self.combine, self.rescore = 100, "intersection", False
        self.score = "weighted-sum"
        self.weight: Any = "calibrated"
        self._data: tuple[np.ndarray, np.ndarray] | None = None
        self._norms: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._stats = {"queries": 0, "candidates": 0, "w1": 0.0, "m1": 0.0, "m2": 0.0, "calls": 0}

    def set_threads(self, threads: int) -> None:
        super().set_threads(threads)
        for sub in self.subs:
            sub.set_threads(threads)

    def _slices(self, array: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
        d = array.shape[1]
        metric = self.metric if self.normalize_slices else "raw"
        return (_columns(array, 0, self.split, metric, f"fusion {what} (first)"),
                _columns(array, self.split, d, metric, f"fusion {what} (second)"))

    def build(self, data: np.ndarray) -> None:
        self._data = self._slices(data, "database")
        for sub, part in zip(self.subs, self._data, strict=True):
            sub.build(part)
        if self.metric == "euclidean":
            self._norms = (sq_norms(self._data[0]), sq_norms(self._data[1]))

    def set_query_params(self, *, top_n: int = 100, combine: str = "intersection",
                         weight: Any = "calibrated", score: str = "weighted-sum",
                         rescore: bool = False, first_query: dict[str, Any] | None = None,
                         second_query: dict[str, Any] | None = None, **unknown: Any) -> None:
        if unknown:
            raise BenchError(f"fusion: unknown query parameter {sorted(unknown)[0]!r}; expected "
                             f"one of: {', '.join(self.query_params_doc)}")
        if score not in ("weighted-sum", "concatenation"):
            raise BenchError(f"fusion: score must be weighted-sum or concatenation, got {score!r}")
        if combine not in ("intersection", "union"):
            raise BenchError(f"fusion: combine must be intersection or union, got {combine!r}")
        if weight != "calibrated" and not (isinstance(weight, int | float) and 0 <= weight <= 1):
            raise BenchError(f"fusion: weight must be 'calibrated' or a number in [0, 1], "
                             f"got {weight!r}")
        if int(top_n) < 1:
            raise BenchError(f"fusion: top_n must be >= 1, got {top_n}")
        self.top_n, self.combine, self.weight, self.rescore = int(top_n), combine, weight, rescore
        self.score = score
        self.subs[0].set_query_params(**(first_query or {}))
        self.subs[1].set_query_params(**(second_query or {}))
        self._reset_stats()

    def weights(self, d1: np.ndarray, d2: np.ndarray) -> tuple[float, float, float, float]:
        """(w1, w2, m1, m2): given, or calibrated on the mean top-10 distances."""
        m = []
        for d in (d1, d2):
            top = d[:, :CALIBRATION_RANKS]
            finite = np.isfinite(top)
            count = finite.sum(axis=1)
            sums = np.where(finite, top, 0.0).sum(axis=1)
            answered = count > 0  # a query whose list is empty has no mean distance
            m.append(float((sums[answered] / count[answered]).mean()) if answered.any()
                     else float("nan"))
        m1, m2 = m
        if self.score == "concatenation":
            return 0.5, 0.5, m1, m2  # the concatenation's distance has no weights
        if self.weight != "calibrated":
            return float(self.weight), 1.0 - float(self.weight), m1, m2
        if not (np.isfinite(m1) and np.isfinite(m2)) or m1 < 0 or m2 < 0 or m1 + m2 <= 0:
            raise BenchError(
                f"fusion: calibrated weights need positive mean distances, got {m1:.4g} and "
                f"{m2:.4g} (metric {self.metric}); give weight: <number> instead")
        return m2 / (m1 + m2), m1 / (m1 + m2), m1, m2

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._data is not None, "build() first"
        qs = self._slices(queries, "queries")
        n = max(self.top_n, k)
        (d1, i1), (d2, i2) = (sub.search(q, n) for sub, q in zip(self.subs, qs, strict=True))
        w1, w2, m1, m2 = self.weights(np.asarray(d1, np.float64), np.asarray(d2, np.float64))
        nq = len(queries)
        q_idx, ids, dist1, dist2 = self._candidates(
            np.asarray(i1, np.int64), np.asarray(i2, np.int64), d1, d2)
        if self.rescore or self.combine == "union":
            for part, dist in ((0, dist1), (1, dist2)):
                todo = np.flatnonzero(~np.isfinite(dist)) if not self.rescore else np.arange(
                    len(ids))
                dist[todo] = pair_distances(self._data[part], self._norms[part], qs[part],
                                            q_idx[todo], ids[todo], self.metric)
        score = self._fuse(w1, w2, dist1, dist2)
        counts = np.bincount(q_idx, minlength=nq)
        order = np.lexsort((ids, score, q_idx))  # by query, then score, ties by lower id
        rank = np.arange(len(order)) - (np.cumsum(counts) - counts)[q_idx[order]]
        keep = rank < k
        out_d = np.full((nq, k), np.inf, dtype=np.float32)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        rows, cols = q_idx[order][keep], rank[keep]
        out_d[rows, cols] = score[order][keep]
        out_i[rows, cols] = ids[order][keep]
        s = self._stats
        s["queries"] += nq
        s["candidates"] += int(counts.sum())
        s["calls"] += 1
        s["w1"] += w1
        s["m1"] += m1
        s["m2"] += m2
        return out_d, out_i

    def _fuse(self, w1: float, w2: float, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
        if self.score == "weighted-sum":
            return w1 * d1 + w2 * d2
        # the distance of [first | second] from its parts (the harness's conventions)
        if self.metric == "euclidean":
            return np.sqrt(d1 * d1 + d2 * d2)
        if self.metric == "angular":  # 1 - dot1 + 1 - dot2 - 1; exact without slice norms
            return d1 + d2 - 1.0
        return d1 + d2  # ip: -dot1 - dot2

    def _candidates(self, i1: np.ndarray, i2: np.ndarray, d1: np.ndarray, d2: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat (query, id, d1, d2) of the fused candidates; a distance the other list
        lacks is inf (to be computed for union)."""
        nq, n = i1.shape
        ids = np.concatenate([i1, i2], axis=1)
        dist = np.concatenate([np.asarray(d1, np.float64), np.asarray(d2, np.float64)], axis=1)
        source = np.broadcast_to(np.repeat([0, 1], [n, i2.shape[1]]), ids.shape)
        order = np.lexsort((source, ids), axis=1)  # by id, first list first
        ids = np.take_along_axis(ids, order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        source = np.take_along_axis(source, order, axis=1)
        valid = ids >= 0
        same_next = np.zeros_like(valid)
        same_next[:, :-1] = (ids[:, 1:] == ids[:, :-1]) & valid[:, 1:]
        first = valid.copy()
        first[:, 1:] &= ids[:, 1:] != ids[:, :-1]  # first occurrence of each id in a row
        if self.combine == "intersection":
            sel = first & same_next & (source == 0)
        else:
            sel = first
        q_idx, col = np.nonzero(sel)
        pick_next = np.minimum(col + 1, ids.shape[1] - 1)
        both = same_next[q_idx, col]
        src = source[q_idx, col]
        here = dist[q_idx, col]
        there = np.where(both, dist[q_idx, pick_next], np.inf)
        dist1 = np.where(src == 0, here, np.inf)
        dist2 = np.where(src == 1, here, there)
        return q_idx.astype(np.int64), ids[q_idx, col], dist1, dist2

    def index_bytes(self) -> int | None:
        sizes = [sub.index_bytes() for sub in self.subs]
        return None if None in sizes else int(sum(s for s in sizes if s is not None))

    def extra_metrics(self) -> dict[str, float]:
        s = self._stats
        if not s["calls"]:
            return {}
        w1 = s["w1"] / s["calls"]
        out = {"candidates_per_query": s["candidates"] / max(s["queries"], 1),
               "weight_first": w1, "weight_second": 1.0 - w1,
               "mean_top10_first": s["m1"] / s["calls"],
               "mean_top10_second": s["m2"] / s["calls"]}
        for i, sub in enumerate(self.subs):
            for name, value in sub.extra_metrics().items():
                out[f"{('first', 'second')[i]}.{name}"] = value
        return out

    def close(self) -> None:
        for sub in self.subs:
            sub.close()
