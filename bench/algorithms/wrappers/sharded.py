"""A wrapper that partitions the database across shards, each running any registered backend.

Why: a database that does not fit one machine (see docs/scaling.md) can still be searched
when every node holds a slice. Shards are contiguous row ranges, each built by its own
inner backend; a query batch is broadcast to every shard and the per-shard top-k lists
are merged by (distance, global id). Because the merge breaks ties by the lower id like
our exact backends do, sharded exact search returns the same neighbours as unsharded
exact search.

Shards live in Ray actors (one process each, spread over the cluster's nodes), started
on the cluster the ray executor uses, or on a local Ray instance. ``local=True`` keeps
the shards in this process instead: no Ray needed, which is what the conformance suite
uses, and a cheap way to measure the cost of the merge itself.

Memory: each actor reports its own USS growth during build and its backend's
``index_bytes``; they come back as ``extra`` figures ``shard<i>_uss_bytes`` and
``shard<i>_index_bytes`` of the one run, and ``index_bytes`` is their sum. The worker's
own ``index_uss_bytes`` only counts the driver side (the merge), not the actors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend
from bench.core.distances import METRICS
from bench.core.errors import BenchError, MissingDependencyError

#: query batches up to this size are sent inline with each shard call
_INLINE_BYTES = 64 * 1024


class _Shard:
    """One shard's backend; used in-process (local) or as the body of a Ray actor."""

    def __init__(self, backend: str, metric: str, dim: int, params: dict[str, Any],
                 threads: int) -> None:
        from bench.algorithms import registry

        self.threads = threads
        self.backend = registry.get(backend)(metric, dim, **params)
        self.backend.set_threads(threads)
        self.uss = 0

    def build(self, data: np.ndarray) -> int | None:
        from threadpoolctl import threadpool_limits

        from bench.core.memory import uss_bytes

        before = uss_bytes()
        with threadpool_limits(limits=self.threads):
            self.backend.build(np.ascontiguousarray(data))
        self.uss = max(0, uss_bytes() - before)
        try:
            return self.backend.index_bytes()
        except Exception:  # noqa: BLE001 - an estimate is optional
            return None

    def set_threads(self, threads: int) -> None:
        self.threads = threads
        self.backend.set_threads(threads)

    def memory(self) -> int:
        return self.uss

    def set_query_params(self, params: dict[str, Any]) -> str | None:
        """None, or the one-line BenchError message (exceptions from actors arrive wrapped)."""
        try:
            self.backend.set_query_params(**params)
        except BenchError as exc:
            return str(exc)
        return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            return self.backend.search(queries, k)

    def extra_metrics(self) -> dict[str, float]:
        return self.backend.extra_metrics()

    def close(self) -> None:
        self.backend.close()


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], offsets: list[int],
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-shard (distances, local ids) -> global top-k, ties broken by the lower global id."""
    dist = np.concatenate([d.astype(np.float32, copy=False) for d, _ in parts], axis=1)
    ids = np.concatenate([np.where(i >= 0, i + off, -1) for (_, i), off in
                          zip(parts, offsets, strict=True)], axis=1).astype(np.int64)
    dist = np.where(ids >= 0, dist, np.inf).astype(np.float32)
    sort_ids = np.where(ids >= 0, ids, np.iinfo(np.int64).max)
    order = np.lexsort((sort_ids, dist), axis=1)[:, :k]
    out_d = np.take_along_axis(dist, order, axis=1)
    out_i = np.take_along_axis(ids, order, axis=1)
    if out_i.shape[1] < k:  # fewer candidates than k in total
        pad = k - out_i.shape[1]
        out_d = np.pad(out_d, ((0, 0), (0, pad)), constant_values=np.inf)
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=-1)
    return out_d, out_i


@register("sharded")
class ShardedBackend(Backend):
    metrics = METRICS
    exact = False  # per instance: that of the inner backend
    open_query_params = True  # query parameters go to the inner backend
    query_params_doc = {"(any)": "query parameters of the inner backend, sent to every shard"}
    accurate_params = {"build": {"backend": "bruteforce", "shards": 2, "local": True},
                       "query": {}}

    def __init__(self, metric: str, dim: int, *, backend: str = "bruteforce", shards: int = 2,
                 backend_params: dict[str, Any] | None = None, local: bool = False) -> None:
        super().__init__(metric, dim)
        from bench.algorithms import registry

        if backend == "sharded":
            raise BenchError("sharded: build.backend must be another backend, not 'sharded'")
        inner = registry.get(backend)
        if metric not in inner.metrics:
            raise BenchError(f"sharded: backend {backend} does not support metric {metric!r}; "
                             f"supported: {', '.join(inner.metrics)}")
        if not isinstance(shards, int) or shards < 1:
            raise BenchError(f"sharded: build.shards must be an integer >= 1, got {shards!r}")
        if not local:
            try:
                import ray  # noqa: F401
            except ImportError:
                raise MissingDependencyError("ray", "ray", "the sharded backend") from None
        self.backend, self.n_shards, self.local = backend, shards, local
        self.params = dict(backend_params or {})
        self.exact = inner.exact
        self._shards: list[Any] = []
        self._offsets: list[int] = []
        self._index_bytes: list[int | None] = []
        self._query: dict[str, Any] = {}
        self._built = False
        # actors start here, not in build(): the harness times build() only, and starting
        # processes is not part of building an index
        self._start()

    # -- shard plumbing: the same calls in-process or through Ray actors ---------------
    def _call(self, method: str, *args: Any) -> list[Any]:
        if self.local:
            return [getattr(s, method)(*args) for s in self._shards]
        import ray

        return ray.get([getattr(s, method).remote(*args) for s in self._shards])

    def _start(self) -> None:
        if self.local:
            self._shards = [_Shard(self.backend, self.metric, self.dim, self.params,
                                   self.threads) for _ in range(self.n_shards)]
            return
        from bench.core.cluster import ensure_ray

        ray = ensure_ray()
        # no CPU reservation: the node's bench_slot already reserves the machine, and
        # asking for CPUs could deadlock inside a ray-executor task on a small node
        actor = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy="SPREAD")(_Shard)
        self._shards = [actor.remote(self.backend, self.metric, self.dim, self.params,
                                     self.threads) for _ in range(self.n_shards)]

    def set_threads(self, threads: int) -> None:
        super().set_threads(threads)
        if self._shards:  # each shard runs with the experiment's threads
            self._call("set_threads", threads)

    def build(self, data: np.ndarray) -> None:
        if self._built or not self._shards:  # a rebuild starts from fresh shards
            self.close()
            self._start()
        self._built = True
        bounds = np.linspace(0, len(data), self.n_shards + 1).astype(int)
        self._offsets = bounds[:-1].tolist()
        parts = [data[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        if self.local:
            self._index_bytes = [s.build(p) for s, p in zip(self._shards, parts, strict=True)]
        else:
            import ray

            self._index_bytes = ray.get([s.build.remote(ray.put(np.ascontiguousarray(p)))
                                         for s, p in zip(self._shards, parts, strict=True)])
        if self._query:
            self.set_query_params(**self._query)

    def set_query_params(self, **params: Any) -> None:
        self._query = dict(params)
        errors = [e for e in self._call("set_query_params", params) if e]
        if errors:
            raise BenchError(f"sharded/{self.backend}: {errors[0]}")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self._built:
            raise BenchError("sharded: build() first")
        if self.local:
            parts = self._call("search", queries, k)
        else:
            import ray

            # a large batch: one copy in the object store, read by every shard; a small one
            # (single-query mode) travels inline with each call, saving a round trip
            ref = ray.put(queries) if queries.nbytes > _INLINE_BYTES else queries
            parts = ray.get([s.search.remote(ref, k) for s in self._shards])
        return merge_topk(parts, self._offsets, k)

    def index_bytes(self) -> int | None:
        known = [b for b in self._index_bytes if b is not None]
        return int(sum(known)) if known and len(known) == len(self._index_bytes) else None

    def extra_metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"shards": float(self.n_shards)}
        if not self._shards:
            return out
        for i, (uss, size) in enumerate(zip(self._call("memory"), self._index_bytes,
                                            strict=True)):
            out[f"shard{i}_uss_bytes"] = float(uss)
            if size is not None:
                out[f"shard{i}_index_bytes"] = float(size)
        sums: dict[str, float] = {}
        for extra in self._call("extra_metrics"):  # e.g. candidates per query: summed
            for key, value in extra.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        out.update(sums)
        return out

    def close(self) -> None:
        if not self._shards:
            return
        try:
            self._call("close")
        finally:
            if not self.local:
                import ray

                for shard in self._shards:
                    ray.kill(shard)
            self._shards = []
            self._built = False

