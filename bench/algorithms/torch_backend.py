"""Exact k-NN in torch: blocked matrix products and top-k on any torch device.

Why a torch backend beside Faiss Flat and our numpy bruteforce: it runs the same
code on the CPU (where the conformance suite tests it) and on a GPU, where exact
search over hundreds of thousands of 4,096-d features takes seconds, as in the
original study's A100 timings. Faiss GPU needs a separate wheel; torch is the
library a GPU user already has.

Exactness: ties are broken towards the lower database id, like our other exact
backends (the selection is bench.groundtruth.torch_knn, shared with GPU ground truth).

Timing: ``search`` returns numpy arrays, so its device-to-host copy waits for the
kernels; the harness's clock therefore never stops before the GPU has finished.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from bench.algorithms import register
from bench.algorithms.base import Backend
from bench.core.errors import BenchError, MissingDependencyError
from bench.groundtruth.torch_knn import DeviceIndex, resolve_device


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "neural", "the torch backend") from None
    return torch


@register("torch")
class TorchBackend(Backend):
    metrics = ("euclidean", "angular", "ip", "hamming")
    exact = True
    accurate_params = {"build": {}, "query": {}}

    def __init__(self, metric: str, dim: int, *,
                 device: Literal["cpu", "cuda", "auto"] | str = "cpu",
                 dtype: Literal["float32", "float16", "bfloat16"] = "float32") -> None:
        super().__init__(metric, dim)
        _torch()  # a missing torch is one line: the extra to install
        if dtype not in ("float32", "float16", "bfloat16"):
            raise BenchError(f"torch: dtype must be float32, float16 or bfloat16, got {dtype!r}")
        self.device = resolve_device(device)
        self.dtype = dtype
        self._index: DeviceIndex | None = None

    def set_threads(self, threads: int) -> None:
        super().set_threads(threads)
        if self.device == "cpu":
            _torch().set_num_threads(threads)

    def build(self, data: np.ndarray) -> None:
        if self.device.startswith("cuda"):
            _torch().cuda.reset_peak_memory_stats()
        self._index = DeviceIndex(data, self.metric, self.device, self.dtype)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None, "build() first"
        return self._index.search(queries, k)

    def index_bytes(self) -> int | None:
        return None if self._index is None else self._index.nbytes()

    def extra_metrics(self) -> dict[str, float]:
        """GPU memory the backend reached (index plus search temporaries), on CUDA."""
        if not self.device.startswith("cuda"):
            return {}
        torch = _torch()
        return {"gpu_peak_memory_bytes": float(torch.cuda.max_memory_allocated())}
