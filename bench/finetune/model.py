"""Encoder + projection head, initialised from a local file when the config names one.

The encoder is any built-in SimCLR v1/v2, ResNet or mini extractor network (the same
module tree the extractor loads, so a checkpoint's ``encoder`` state dict is an
extractor's weights file as it is). The head is SimCLR's projection head (Linear without
bias + BN per layer, ReLU between, 128-d); it is initialised from the file when the file
has one (a converted v2 checkpoint with ``--head``, or a fine-tuning checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.extractors.neural._simclr import projection_head
from bench.extractors.neural.models import MINI_MODELS, MODELS, ModelSpec
from bench.extractors.neural.weights import fit
from bench.finetune.config import FinetuneConfig


def encoder_spec(name: str) -> ModelSpec:
    return {**MODELS, **MINI_MODELS}[name]


class ContrastiveModel(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def head_layers(config: FinetuneConfig, spec: ModelSpec) -> int:
    if config.head.layers is not None:
        return config.head.layers
    return spec.head_layers if spec.family.startswith("simclr") else 2


def _read(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise BenchError(f"{what}: file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling / zip / format errors alike
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"{what}: {path} is not a weights-only torch checkpoint "
                         f"({first[:200]})") from None
    if not isinstance(obj, dict):
        raise BenchError(f"{what}: {path} does not hold a state dict")
    return obj


def split_weights(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(encoder state, head state or None) of a fine-tuning checkpoint, a converted file
    (head under ``head.``) or a ``{'state_dict': ...}`` wrapper."""
    if isinstance(obj.get("encoder"), dict):
        head = obj.get("head")
        return obj["encoder"], head if isinstance(head, dict) else None
    if isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    encoder = {k: v for k, v in obj.items() if not k.startswith("head.")}
    head = {k.removeprefix("head."): v for k, v in obj.items() if k.startswith("head.")}
    return encoder, head or None


def build_model(config: FinetuneConfig, source: Path) -> ContrastiveModel:
    """Call under a seeded RNG: random initialisation is part of the run's determinism."""
    spec = encoder_spec(config.encoder.name)
    encoder = spec.build(head=False)
    if spec.family == "resnet":
        encoder.fc.requires_grad_(False)  # kept only so torchvision files load strictly
    head = projection_head(spec.dim, head_layers(config, spec))
    weights = config.encoder.weights
    if weights is not None:
        path = weights if weights.is_absolute() else source.parent / weights
        what = f"{source}: encoder.weights"
        encoder_state, head_state = split_weights(_read(path, what))
        fit(encoder, encoder_state, path, what)
        if head_state is not None:
            fit(head, head_state, path, f"{what} (projection head)")
    return ContrastiveModel(encoder, head)
