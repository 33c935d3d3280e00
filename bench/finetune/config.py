"""The fine-tuning YAML: one strict pydantic model, validated like an experiment (unknown
keys, wrong types, unknown encoder or dataset names fail at load with the file and key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from bench.config.experiment import MAX_NAME, NamedSection
from bench.config.yaml_loader import builtin_files, load_yaml, read_text, resolve_file
from bench.core.errors import BenchError
from bench.core.options import StrictInt, StrictOptions, format_validation_error


class EncoderOptions(StrictOptions):
    #: a built-in SimCLR v1/v2, ResNet or mini extractor name
    name: str
    #: local weights: a state dict (`bench convert`), a fine-tuning checkpoint, or none
    #: (random initialisation; the mini encoders)
    weights: Path | None = None


class HeadOptions(StrictOptions):
    #: projection head depth; default: the encoder family's (SimCLR v2: 3, v1 and ResNets: 2)
    layers: StrictInt | None = Field(None, ge=1, le=4)


class DataOptions(StrictOptions):
    dataset: NamedSection
    #: which items of the dataset are training images
    part: Literal["database", "queries", "all"] = "database"
    #: at most this many images (the first ones, in dataset order)
    limit: StrictInt | None = Field(None, ge=1)


class OptimizerOptions(StrictOptions):
    name: Literal["lars", "adam"] = "lars"
    lr: float = Field(0.3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    #: LARS trust coefficient
    trust: float = Field(0.001, gt=0)
    #: not applied to biases and norm parameters (which LARS also leaves unscaled)
    weight_decay: float = Field(1e-6, ge=0)


class ScheduleOptions(StrictOptions):
    cosine: bool = True
    warmup_epochs: float = Field(0.0, ge=0)


class AugmentOptions(StrictOptions):
    """The SimCLR v1/v2 policy; sizes in pixels."""

    #: crop size; default: the encoder's evaluation crop (224, or 64 for the mini encoders)
    size: StrictInt | None = Field(None, ge=16, le=1024)
    #: colour jitter strength s (brightness / contrast / saturation 0.8 s, hue 0.2 s)
    strength: float = Field(1.0, ge=0, le=2)
    #: images are decoded with the shorter side at this size before cropping (default 2 x size)
    decode_side: StrictInt | None = Field(None, ge=16, le=4096)


class FinetuneConfig(StrictOptions):
    name: str = Field(pattern=rf"^[A-Za-z0-9._-]{{1,{MAX_NAME}}}$")
    description: str = ""
    seed: StrictInt = 0
    encoder: EncoderOptions
    head: HeadOptions = Field(default_factory=HeadOptions)
    data: DataOptions
    validation: DataOptions | None = None
    epochs: StrictInt = Field(100, ge=1)
    #: images per process (the study: 32 per GPU); each step sees batch_size x nproc images
    batch_size: StrictInt = Field(32, ge=2)
    optimizer: OptimizerOptions = Field(default_factory=OptimizerOptions)
    schedule: ScheduleOptions = Field(default_factory=ScheduleOptions)
    temperature: float = Field(0.1, gt=0)
    augment: AugmentOptions = Field(default_factory=AugmentOptions)
    #: cpu, cuda, or auto (cuda when present); with cuda each process takes one GPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: torch threads per process (default: cores / processes)
    threads: StrictInt | None = Field(None, ge=1)
    #: DataLoader decoding processes per training process
    workers: StrictInt = Field(0, ge=0)

    @model_validator(mode="after")
    def _warmup(self) -> FinetuneConfig:
        if self.schedule.warmup_epochs >= self.epochs:
            raise ValueError("schedule.warmup_epochs must be below epochs")
        return self


def builtin_configs() -> dict[str, Path]:
    return builtin_files("finetune")


def resolve_config(spec: str | Path) -> Path:
    return resolve_file(spec, builtin_configs(), "fine-tuning config")


def load_config(spec: str | Path) -> tuple[FinetuneConfig, Path]:
    """The validated config and its file (relative paths resolve against its folder)."""
    source = resolve_config(spec)
    raw = load_yaml(read_text(source), source)
    if not isinstance(raw, dict):
        raise BenchError(f"{source}: expected a mapping at the top level")
    try:
        config = FinetuneConfig.model_validate(raw)
    except ValidationError as exc:
        raise BenchError(format_validation_error(source, exc, raw=raw)) from None
    _check_names(config, source, raw)
    return config, source.resolve()


def _check_names(config: FinetuneConfig, source: Path, raw: dict[str, Any]) -> None:
    from bench.datasets import registry as datasets
    from bench.extractors.neural.models import MINI_MODELS, MODELS

    known = {**MODELS, **MINI_MODELS}
    if config.encoder.name not in known:
        raise BenchError(f"{source}: encoder.name: {config.encoder.name!r} is not a built-in "
                         f"encoder; expected one of: {', '.join(sorted(known))}")
    for where, data in (("data", config.data), ("validation", config.validation)):
        if data is None:
            continue
        try:
            dcls = datasets.get(data.dataset.name)
        except BenchError as exc:
            raise BenchError(f"{source}: {where}.dataset.name: {exc}") from None
        options = data.dataset.options()
        try:
            dcls.Options.model_validate(options)
        except ValidationError as exc:
            raise BenchError(format_validation_error(source, exc, f"{where}.dataset",
                                                     options)) from None
