"""The SimCLR v1/v2 augmentation policy, with kornia, one image at a time.

Two views per image: RandomResizedCrop (bicubic, scale 0.08-1), horizontal flip p 0.5,
colour jitter (0.8 s, 0.8 s, 0.8 s, 0.2 s) with p 0.8, grayscale p 0.2, Gaussian blur
(odd kernel of 10 % of the size, sigma 0.1-2.0) with p 0.5.

Why kornia: it runs on tensors (CPU or GPU, batched or not) without torchvision, which is
not installable here, and it is maintained with the same ops and probabilities as the
torchvision pipeline of the SimCLR PyTorch ports. Each view is drawn under its own seed,
derived from (seed, epoch, image index, view): an image's views do not depend on the
batch it lands in, the process that draws it or the DataLoader worker, so one process on
a batch of 2B and two processes on B each see the same pixels, and a resumed run sees
what the uninterrupted one would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def blur_kernel(size: int) -> int:
    """Odd kernel of about 10 % of the crop (23 at 224, 7 at 64)."""
    k = int(0.1 * size)
    return k + 1 if k % 2 == 0 else k


def simclr_policy(size: int, strength: float = 1.0) -> Any:
    import kornia.augmentation as K

    s = strength
    k = blur_kernel(size)
    return K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(0.08, 1.0), resample="BICUBIC"),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((k, k), (0.1, 2.0), p=0.5),
    )


def view_seed(seed: int, epoch: int, index: int, view: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index, view]).generate_state(1)[0])


#: decoded images kept in memory per process (small collections decode once per run)
CACHE_BYTES = 256 * 2**20


def decode(path: str | Path, shorter_side: int) -> torch.Tensor:
    """RGB uint8 (3, H, W), the shorter side resized to ``shorter_side``."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        scale = shorter_side / min(w, h)
        size = (max(shorter_side, round(w * scale)), max(shorter_side, round(h * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


class TwoViews:
    """Map-style dataset: (epoch, index) -> (index, view a, view b). The epoch travels in
    the key, so persistent DataLoader workers (which keep their decoded-image cache) need
    no message when an epoch starts."""

    def __init__(self, paths: list[str], size: int, decode_side: int, strength: float,
                 seed: int) -> None:
        self.paths, self.size, self.decode_side = paths, size, decode_side
        self.strength, self.seed = strength, seed
        self._policy: Any = None
        self._cache: dict[int, torch.Tensor] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, torch.Tensor, torch.Tensor]:
        epoch, index = key
        if self._policy is None:
            self._policy = simclr_policy(self.size, self.strength)
        pixels = self._cache.get(index)
        if pixels is None:
            pixels = decode(self.paths[index], self.decode_side)
            if self._cached_bytes + pixels.numel() <= CACHE_BYTES:
                self._cache[index] = pixels
                self._cached_bytes += pixels.numel()
        image = pixels.unsqueeze(0).float().div_(255.0)
        views = []
        for view in (0, 1):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(view_seed(self.seed, epoch, index, view))
                views.append(self._policy(image)[0].clamp_(0.0, 1.0))
        return index, views[0], views[1]

    def __getstate__(self) -> dict[str, Any]:  # to DataLoader workers without the modules
        return {**self.__dict__, "_policy": None, "_cache": {}, "_cached_bytes": 0}
