"""The model table: every built-in network name, its architecture and feature size.

Pure data (no torch), so the registry, ``bench list`` and experiment validation
know every name and dimension without the ``neural`` extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["resnet", "simclr-v1", "simclr-v2"]

DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
#: ResNet-18 layout (two-conv basic blocks), for the width-reduced mini encoders only
BASIC_DEPTHS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2)}
SK_RATIO = 0.0625
#: output of SimCLR's contrastive projection head (features with ``use_head: true``)
HEAD_OUT = 128


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: Family
    depth: int
    width: int = 1  # SimCLR width multiplier: every channel count times this
    width_per_group: int = 64  # torchvision's bottleneck width; 128 for the wide ResNets
    sk: bool = False  # SimCLR v2 selective kernels (and their 3x3 stem, avg-pool shortcuts)
    base: int = 64  # stem channels at width 1; the mini encoders reduce it
    preset: str | None = None  # preprocessing preset, when not the family's

    @property
    def basic(self) -> bool:
        """ResNet-18/34 blocks (expansion 1) instead of bottlenecks (expansion 4)."""
        return self.depth in BASIC_DEPTHS

    @property
    def dim(self) -> int:
        """Channels of the last stage = length of the pooled feature."""
        return self.base * 8 * (1 if self.basic else 4) * self.width

    @property
    def head_layers(self) -> int:
        """Layers of the contrastive projection head: v1 has 2, v2 has 3."""
        return 2 if self.family == "simclr-v1" else 3

    @property
    def preprocess(self) -> str:
        """Name of the preprocessing preset the published experiments used."""
        if self.preset is not None:
            return self.preset
        return "imagenet" if self.family == "resnet" else "simclr"

    def build(self, *, head: bool = False) -> Any:
        """A randomly initialised ``torch.nn.Module`` (needs torch)."""
        if self.family == "resnet":
            from bench.extractors.neural._resnet import ResNet

            return ResNet(DEPTHS[self.depth], width_per_group=self.width_per_group)
        from bench.extractors.neural._simclr import SimCLRResNet

        layers = BASIC_DEPTHS[self.depth] if self.basic else DEPTHS[self.depth]
        return SimCLRResNet(layers, width=self.width, sk_ratio=SK_RATIO if self.sk else 0.0,
                            head=head, base=self.base, basic=self.basic,
                            head_layers=self.head_layers)


def _table() -> dict[str, ModelSpec]:
    specs = [
        ModelSpec("resnet50", "resnet", 50),
        ModelSpec("resnet101", "resnet", 101),
        ModelSpec("resnet152", "resnet", 152),
        ModelSpec("wide_resnet50_2", "resnet", 50, width_per_group=128),
        ModelSpec("wide_resnet101_2", "resnet", 101, width_per_group=128),
    ]
    specs += [ModelSpec(f"simclr-v1-r50-{w}x", "simclr-v1", 50, width=w) for w in (1, 2, 4)]
    specs += [
        ModelSpec(f"simclr-v2-r{d}-{w}x-sk{int(sk)}", "simclr-v2", d, width=w, sk=sk)
        for d in (50, 101, 152) for w in (1, 2, 3) for sk in (False, True)
    ]
    return {s.name: s for s in specs}


MODELS: dict[str, ModelSpec] = _table()

#: Tiny SimCLR-shaped encoders for offline fine-tuning on 2 CPU cores (random init; no
#: published weights): ResNet-18 layout, every channel count / 4 (stem 16, features 128),
#: 64-px inputs. Kept out of MODELS, whose names are the published architectures.
MINI_MODELS: dict[str, ModelSpec] = {
    "simclr-mini-r18": ModelSpec("simclr-mini-r18", "simclr-v2", 18, base=16,
                                 preset="simclr-mini"),
}


def simclr_name(version: int, depth: int, width: int, sk: bool) -> str:
    """Table name of a SimCLR encoder (v1 has neither selective kernels nor other depths)."""
    if version == 1:
        return f"simclr-v1-r{depth}-{width}x"
    return f"simclr-v2-r{depth}-{width}x-sk{int(sk)}"
