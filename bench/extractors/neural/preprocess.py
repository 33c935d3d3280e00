"""Image preprocessing exactly as the original experiments, in PIL + numpy (+ torch at the end).

- ``simclr``: resize the shorter side to 256 (Lanczos), centre crop 224, scale to
  [0, 1], no normalisation.
- ``imagenet`` (the study's ResNets): resize to 256x256 (Lanczos, as the study's code
  did; torchvision's default would be bilinear), centre crop 224, ImageNet mean/std.
- ``inception-v3``: shorter side to 342 (bilinear), centre crop 299, ImageNet mean/std;
  ``efficientnet-b7``: shorter side to 600 (bicubic), centre crop 600, ImageNet
  mean/std: the evaluation transforms published with torchvision's ImageNet weights of
  those models (``Inception_V3_Weights`` / ``EfficientNet_B7_Weights.IMAGENET1K_V1``).
  The adapters pick them for ``inception_v3`` / ``efficientnet_b7`` models
  (``preprocess: auto``, :func:`preset_for_model`).

Sizes and rounding follow torchvision's PIL path (``Resize(int)`` truncates the long
side, ``CenterCrop`` rounds the offset), so features match a torchvision pipeline
without depending on it. Decoding and geometry run in DataLoader workers and produce
uint8 HWC arrays (4x less inter-process traffic than float); scaling and
normalisation run batched on the model's device in ``to_model_input``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocess:
    name: str
    resize: int = 256
    shorter_side: bool = True  # True: shorter side to `resize`; False: `resize` x `resize`
    crop: int = 224
    interpolation: str = "lanczos"
    mean: tuple[float, float, float] | None = None  # None: inputs stay in [0, 1]
    std: tuple[float, float, float] | None = None

    def describe(self) -> dict[str, Any]:
        """Everything that changes the pixels, for the extractor's fingerprint."""
        return asdict(self)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        if not self.shorter_side:
            return self.resize, self.resize
        if width <= height:
            return self.resize, int(self.resize * height / width)
        return int(self.resize * width / height), self.resize

    def to_array(self, image: Image.Image) -> np.ndarray:
        """RGB image -> uint8 array (crop, crop, 3)."""
        image = image.convert("RGB") if image.mode != "RGB" else image
        image = image.resize(self.resized_size(*image.size), _FILTERS[self.interpolation])
        width, height = image.size
        if width < self.crop or height < self.crop:
            raise ValueError(f"image of {width}x{height} after resizing is smaller than the "
                             f"{self.crop} crop")
        top = int(round((height - self.crop) / 2.0))
        left = int(round((width - self.crop) / 2.0))
        image = image.crop((left, top, left + self.crop, top + self.crop))
        return np.asarray(image, dtype=np.uint8)

    def load(self, path: str | Path) -> np.ndarray:
        """Decode a file fully (truncated files fail here) and preprocess it."""
        with Image.open(path) as image:
            image.load()
            return self.to_array(image)

    def to_model_input(self, pixels: Any, dtype: Any = None) -> Any:
        """uint8 (N, H, W, 3) tensor -> float (N, 3, H, W) in channels-last memory layout
        (a permuted view, so no copy); scaled to [0, 1] and normalised if configured."""
        import torch

        x = pixels.permute(0, 3, 1, 2).to(dtype or torch.float32).div_(255.0)
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = x.sub_(mean).div_(std)
        return x


PRESETS: dict[str, Preprocess] = {
    "simclr": Preprocess("simclr", 256, True, 224, "lanczos"),
    "imagenet": Preprocess("imagenet", 256, False, 224, "lanczos", IMAGENET_MEAN, IMAGENET_STD),
    "inception-v3": Preprocess("inception-v3", 342, True, 299, "bilinear", IMAGENET_MEAN,
                               IMAGENET_STD),
    "efficientnet-b7": Preprocess("efficientnet-b7", 600, True, 600, "bicubic", IMAGENET_MEAN,
                                  IMAGENET_STD),
    # the simclr preset scaled to 64 px (256/224 of 64 = 73), for the mini encoders
    "simclr-mini": Preprocess("simclr-mini", 73, True, 64, "lanczos"),
}


#: model-name fragments (torchvision and timm spellings) -> their family's preset
_MODEL_PRESETS = (("inception_v3", "inception-v3"), ("efficientnet_b7", "efficientnet-b7"))


def preset_for_model(model: str) -> str:
    """The preset of a third-party model's family (``tf_efficientnet_b7`` and
    ``efficientnet_b7`` alike), ``imagenet`` for every other model."""
    name = model.lower()
    return next((preset for part, preset in _MODEL_PRESETS if part in name), "imagenet")
