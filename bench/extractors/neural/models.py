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
SK_RATIO = 0.0625


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: Family
    depth: int
    width: int = 1  # SimCLR width multiplier: every channel count times this
    width_per_group: int = 64  # torchvision's bottleneck width; 128 for the wide ResNets
    sk: bool = False  # SimCLR v2 selective kernels (and their 3x3 stem, avg-pool shortcuts)

    @property
    def dim(self) -> int:
        """Channels of the last stage = length of the pooled feature."""
        return 2048 * self.width

    @property
    def preprocess(self) -> str:
        """Name of the preprocessing preset the published experiments used."""
        return "imagenet" if self.family == "resnet" else "simclr"

    def build(self, *, head: bool = False) -> Any:
        """A randomly initialised ``torch.nn.Module`` (needs torch)."""
        if self.family == "resnet":
            from bench.extractors.neural._resnet import ResNet

            return ResNet(DEPTHS[self.depth], width_per_group=self.width_per_group)
        from bench.extractors.neural._simclr import SimCLRResNet

        return SimCLRResNet(DEPTHS[self.depth], width=self.width,
                            sk_ratio=SK_RATIO if self.sk else 0.0, head=head)


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


def simclr_name(version: int, depth: int, width: int, sk: bool) -> str:
    """Table name of a SimCLR encoder (v1 has neither selective kernels nor other depths)."""
    if version == 1:
        return f"simclr-v1-r{depth}-{width}x"
    return f"simclr-v2-r{depth}-{width}x-sk{int(sk)}"
