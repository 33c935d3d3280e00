"""The SimCLR encoders (v1 and v2, one TensorFlow generator) rebuilt in PyTorch.

Both papers use one ResNet generator with every channel count times a width
multiplier w (stem 64w, bottleneck widths 64w..512w, expansion 4, features 2048w);
v1 is its depth-50 instance without selective kernels. What differs from
torchvision's ResNet, and matters for reproducing the published features:

- TF ``SAME`` max pooling pads right/bottom first (torchvision pads both sides), so
  the pooling windows sit one pixel apart;
- with selective kernels (``sk_ratio > 0``) the stem is three 3x3 convolutions
  (32w, 32w, 64w channels), projection shortcuts average-pool before their 1x1
  conv (zero-pad right/bottom + 2x2 pool for stride 2; for stride 1 a ``SAME`` pool
  whose border windows average only real pixels, as TF does), and each 3x3 conv
  becomes a two-branch selective-kernel block.

Modules are registered in the order TensorFlow created its variables (a block's
projection shortcut before its main path), which is the order checkpoint
conversion relies on. BatchNorm eps is 1e-5 as in the TF code.

Imports torch at module level: import it only after checking torch is installed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.extractors.neural.models import HEAD_OUT

HEAD_LAYERS = 3


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def tf_max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    top, bottom = _same_pads(x.shape[-2], kernel, stride)
    left, right = _same_pads(x.shape[-1], kernel, stride)
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)


def tf_avg_pool_same_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 stride-1 ``SAME`` average pool: TF pads right/bottom and divides each window by
    the number of real pixels in it (2 on the last row/column, 1 in the corner)."""
    h, w = x.shape[-2:]
    summed = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1) * 4
    rows = torch.full((h, 1), 2.0, dtype=x.dtype, device=x.device)
    cols = torch.full((1, w), 2.0, dtype=x.dtype, device=x.device)
    rows[-1] = 1.0
    cols[:, -1] = 1.0
    return summed / (rows * cols)


def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    # TF's fixed padding for stride 2 and SAME for stride 1 both equal (k-1)//2 per side here.
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5)


class Shortcut(nn.Module):
    """Projection shortcut; with selective kernels the ResNet-D average-pool variant."""

    def __init__(self, cin: int, cout: int, stride: int, avg_pool: bool) -> None:
        super().__init__()
        self.stride, self.avg_pool = stride, avg_pool
        self.conv = conv(cin, cout, 1, 1 if avg_pool else stride)
        self.bn = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.avg_pool:
            if self.stride > 1:
                x = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, self.stride)
            else:
                x = tf_avg_pool_same_2x2(x)
        return self.bn(self.conv(x))


class SelectiveKernel(nn.Module):
    """One 3x3 conv to 2C channels + BN + ReLU, split into two branches; a softmax over
    the branches, computed from their pooled sum, weights them per channel."""

    def __init__(self, cin: int, channels: int, stride: int, sk_ratio: float,
                 min_dim: int = 32) -> None:
        super().__init__()
        mid = max(int(channels * sk_ratio), min_dim)
        self.conv = conv(cin, 2 * channels, 3, stride)
        self.bn = bn(2 * channels)
        self.fc1 = nn.Conv2d(channels, mid, 1, bias=False)  # on the branches' sum: C in
        self.fc_bn = bn(mid)
        self.fc2 = nn.Conv2d(mid, 2 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = F.relu(self.bn(self.conv(x))).chunk(2, dim=1)
        pooled = (a + b).mean(dim=(2, 3), keepdim=True)
        mixing = self.fc2(F.relu(self.fc_bn(self.fc1(pooled))))
        n, c2 = mixing.shape[:2]
        weights = mixing.reshape(n, 2, c2 // 2, 1, 1).softmax(dim=1)
        return a * weights[:, 0] + b * weights[:, 1]


class Block(nn.Module):
    expansion = 4

    def __init__(self, cin: int, channels: int, stride: int, projection: bool,
                 sk_ratio: float) -> None:
        super().__init__()
        cout = channels * self.expansion
        # Registered first: TF created the shortcut's variables before the main path's.
        self.shortcut = Shortcut(cin, cout, stride, sk_ratio > 0) if projection else None
        self.conv1 = conv(cin, channels, 1)
        self.bn1 = bn(channels)
        if sk_ratio > 0:
            self.sk = SelectiveKernel(channels, channels, stride, sk_ratio)
        else:
            self.conv2 = conv(channels, channels, 3, stride)
            self.bn2 = bn(channels)
        self.conv3 = conv(channels, cout, 1)
        self.bn3 = bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.sk(out) if hasattr(self, "sk") else F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + shortcut)


class BasicBlock(nn.Module):
    """The two-3x3-conv block of ResNet-18/34 (expansion 1), for the width-reduced
    ``simclr-mini`` encoders: same names as ``Block`` (shortcut first, then the main path)."""

    expansion = 1

    def __init__(self, cin: int, channels: int, stride: int, projection: bool,
                 sk_ratio: float = 0.0) -> None:
        super().__init__()
        self.shortcut = Shortcut(cin, channels, stride, False) if projection else None
        self.conv1 = conv(cin, channels, 3, stride)
        self.bn1 = bn(channels)
        self.conv2 = conv(channels, channels, 3)
        self.bn2 = bn(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + shortcut)


class SimCLRResNet(nn.Module):
    """``base``: stem channels at width 1 (64 in the papers; smaller for the mini encoders);
    ``basic``: ResNet-18/34 blocks instead of bottlenecks."""

    def __init__(self, layers: Sequence[int], *, width: int = 1, sk_ratio: float = 0.0,
                 head: bool = False, base: int = 64, basic: bool = False,
                 head_layers: int = HEAD_LAYERS) -> None:
        super().__init__()
        block: type[Block] | type[BasicBlock] = BasicBlock if basic else Block
        if sk_ratio > 0:
            half = base // 2 * width
            self.stem = nn.Sequential(
                conv(3, half, 3, 2), bn(half), nn.ReLU(),
                conv(half, half, 3), bn(half), nn.ReLU(),
                conv(half, base * width, 3), bn(base * width), nn.ReLU(),
            )
        else:
            self.stem = nn.Sequential(conv(3, base * width, 7, 2), bn(base * width), nn.ReLU())
        cin = base * width
        for i, (blocks, stride) in enumerate(zip(layers, (1, 2, 2, 2), strict=True)):
            channels = base * width * 2**i
            stage = [block(cin, channels, stride, True, sk_ratio)]
            cin = channels * block.expansion
            stage += [block(cin, channels, 1, False, sk_ratio) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.dim = cin
        # The contrastive projection head: kept only so converted checkpoints that carry it
        # load strictly; features never go through it.
        self.head = projection_head(cin, head_layers) if head else None
        for m in self.modules():  # torchvision's scheme: random features of a sane scale
            if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder output (N, 2048 * width)."""
        x = tf_max_pool_same(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise ValueError("this model was built without the contrastive head")
        return self.head(features)


def projection_head(dim: int, n_layers: int = HEAD_LAYERS) -> nn.Sequential:
    """Linear (no bias) + BN per layer, ReLU between; 128-d output (v2: 3 layers, v1: 2).
    The last BN has no learned shift in TF (``center=False``), so its bias is zero after
    conversion."""
    layers: list[nn.Module] = []
    for j in range(n_layers):
        out = HEAD_OUT if j == n_layers - 1 else dim
        layers += [nn.Linear(dim, out, bias=False), nn.BatchNorm1d(out, eps=1e-5)]
        if j != n_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Projected(nn.Module):
    """An encoder followed by its projection head: features with ``use_head: true``."""

    def __init__(self, inner: SimCLRResNet) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.project(self.inner(x))
