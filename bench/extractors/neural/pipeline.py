"""The extraction loop: DataLoader workers decode and transform images while the model runs.

Workers return uint8 batches (plus the positions and reasons of unreadable files,
which are skipped, never fatal); the main process moves each batch to the device,
normalises it there and runs the model under ``torch.inference_mode()``, optionally
in channels-last layout and under bfloat16 autocast. The DataLoader keeps
``prefetch`` batches per worker decoded ahead, so with enough workers the model
never waits for JPEG decoding.

torch is imported inside functions: the registry imports this module without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError, MissingDependencyError
from bench.extractors.neural.preprocess import Preprocess

OnBatch = Callable[[np.ndarray, np.ndarray, list[tuple[int, str]]], None]


def require_torch(purpose: str = "neural feature extractors") -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "neural", purpose) from None
    return torch


def choose_device(requested: str, what: str) -> Any:
    """``auto``: CUDA, then Apple MPS, then CPU. An explicit device must be usable."""
    torch = require_torch()
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise BenchError(f"{what}: device: {requested!r} is not a torch device; expected "
                         "auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"{what}: device: {requested} requested but this torch has no "
                         "usable CUDA device (use device: auto or cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BenchError(f"{what}: device: mps requested but MPS is not available")
    return device


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 32
    workers: int = 2
    device: Any = None  # torch.device; None = cpu
    bfloat16: bool = False
    channels_last: bool = False
    prefetch: int = 2  # batches decoded ahead per worker


class ImageFiles:
    """Map-style dataset over image paths (duck-typed: DataLoader needs only
    ``__len__``/``__getitem__``, so no torch import at module level)."""

    def __init__(self, paths: Sequence[str | None], preprocess: Preprocess) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | None]:
        path = self.paths[index]
        if path is None:
            return index, None, "item has no image path"
        try:
            return index, self.preprocess.load(path), None
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable"
            return index, None, f"{type(exc).__name__}: {exc}".replace("\n", " ")


def collate(samples: list[tuple[int, np.ndarray | None, str | None]]) -> tuple[Any, ...]:
    """-> (kept positions, uint8 tensor (n, H, W, 3) or None, [(position, reason)])."""
    import torch

    kept = [(i, a) for i, a, _ in samples if a is not None]
    skipped = [(i, reason or "unreadable") for i, a, reason in samples if a is None]
    positions = np.asarray([i for i, _ in kept], dtype=np.int64)
    pixels = torch.from_numpy(np.stack([a for _, a in kept])) if kept else None
    return positions, pixels, skipped


def autocast(device: Any, enabled: bool) -> Any:
    torch = require_torch()
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def heap_allocations(enabled: bool = True) -> Iterator[None]:
    """Serve large allocations from the glibc heap while extracting on the CPU.

    glibc hands every block above 32 MB straight back to the OS when freed
    (mmap/munmap), and a batch of 32 at 224x224 has ~100 MB activations, so every
    forward page-faults its memory in afresh: ~1.1M faults per batch for ResNet-50,
    measured here as 30-40 % of the CPU time and a 3-6x lower throughput on a busy
    2-core machine. With mmap off the heap keeps and reuses those blocks (no faults
    after the first batch); afterwards the defaults come back and the heap is trimmed,
    so the memory returns to the OS. A no-op off glibc (macOS, musl).
    """
    libc = None
    if enabled and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            libc = None
    if libc is None:
        yield
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(m_mmap_max, 65536)
        libc.mallopt(m_trim_threshold, 128 * 1024)
        libc.malloc_trim(0)


def prepare_model(model: Any, settings: RunSettings) -> Any:
    torch = require_torch()
    model = model.eval().to(settings.device or "cpu")
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def forward(model: Any, pixels: Any, preprocess: Preprocess, settings: RunSettings) -> np.ndarray:
    """uint8 NHWC batch -> float32 features, on the configured device and precision."""
    torch = require_torch()
    device = settings.device or torch.device("cpu")
    x = pixels.to(device, non_blocking=True)
    x = preprocess.to_model_input(x)
    if not settings.channels_last:
        x = x.contiguous()
    with torch.inference_mode(), autocast(device, settings.bfloat16):
        out = model(x)
    return out.float().cpu().numpy()


def run(model: Any, paths: Sequence[str | Path | None], preprocess: Preprocess,
        on_batch: OnBatch, settings: RunSettings, dim: int) -> None:
    """Extract features of ``paths`` in batches, calling ``on_batch(positions, features,
    skipped)`` in order; ``model`` must already be prepared (``prepare_model``)."""
    torch = require_torch()
    from torch.utils.data import DataLoader

    dataset = ImageFiles([None if p is None else str(p) for p in paths], preprocess)
    device = settings.device or torch.device("cpu")
    loader = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=settings.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=settings.prefetch if settings.workers > 0 else None,
    )
    with torch.inference_mode(), heap_allocations(device.type == "cpu"):
        for positions, pixels, skipped in loader:
            if pixels is None:
                on_batch(positions, np.zeros((0, dim), np.float32), skipped)
                continue
            on_batch(positions, forward(model, pixels, preprocess, settings), skipped)
