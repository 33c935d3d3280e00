"""Registered neural extractors: one name per model in ``models.MODELS``, plus the
``torchvision`` and ``timm`` adapters (``model:`` option) for users who have them.

Weights come only from the local file named by ``weights:``; nothing is downloaded.
The model is built and loaded on first use, so validating an experiment needs
neither torch nor the weights. The fingerprint (the feature store's cache key)
holds the model, the weights' SHA-256 and the preprocessing, not the batch size,
device or worker count, which do not change the features beyond float rounding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from bench.core.errors import BenchError, MissingDependencyError
from bench.core.items import Item
from bench.core.options import StrictOptions
from bench.extractors import register
from bench.extractors.base import Extractor
from bench.extractors.neural.models import HEAD_OUT, MINI_MODELS, MODELS, ModelSpec
from bench.extractors.neural.pipeline import OnBatch, RunSettings
from bench.extractors.neural.preprocess import PRESETS, Preprocess, preset_for_model


class NeuralOptions(StrictOptions):
    weights: Path = Field(description="local weights file: a torch state dict "
                          "(see `bench convert` for the TensorFlow SimCLR checkpoints)")
    batch_size: int = Field(32, ge=1)
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda[:N], mps")
    workers: int | None = Field(None, ge=0, description="DataLoader decoding processes "
                                "(default: the run's --workers)")
    bfloat16: bool = Field(False, description="bfloat16 autocast (changes features slightly)")
    channels_last: bool = Field(True, description="channels-last memory layout: same features, "
                                "about 1.2x faster on CPU")

    @field_validator("weights")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class NeuralExtractor(Extractor):
    """Shared plumbing: lazy model, DataLoader pipeline, fingerprint with weights hash."""

    Options: ClassVar[type[StrictOptions]] = NeuralOptions
    modality: ClassVar[str] = "image"
    family: ClassVar[str] = "float"

    def __init__(self, options: StrictOptions) -> None:
        super().__init__(options)
        self._model: Any = None
        self._device: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for worker processes (the store's generic pipeline): they rebuild the
        # model from the weights file instead of receiving hundreds of MB through a pipe.
        return {**self.__dict__, "_model": None}

    @property
    def opts(self) -> NeuralOptions:
        return self.options  # type: ignore[return-value]

    @property
    def what(self) -> str:
        return f"extractor {self.registered_name}"

    @property
    def preprocess(self) -> Preprocess:
        raise NotImplementedError

    def build_model(self) -> Any:
        """The network with the weights file loaded (strict), returning pooled features."""
        raise NotImplementedError

    def describe_model(self) -> dict[str, Any]:
        return {}

    def fingerprint(self) -> dict[str, Any]:
        import PIL

        from bench.extractors.neural.weights import sha256_file

        return {"extractor": self.registered_name, **self.describe_model(),
                "weights_sha256": sha256_file(self.opts.weights, self.what),
                "preprocess": self.preprocess.describe(), "bfloat16": self.opts.bfloat16,
                "pillow": PIL.__version__}

    def settings(self, workers: int) -> RunSettings:
        from bench.extractors.neural.pipeline import choose_device

        if self._device is None:
            self._device = choose_device(self.opts.device, self.what)
        if self.opts.workers is not None:
            workers = self.opts.workers
        return RunSettings(batch_size=self.opts.batch_size, workers=max(0, workers),
                           device=self._device, bfloat16=self.opts.bfloat16,
                           channels_last=self.opts.channels_last)

    def model(self, settings: RunSettings) -> Any:
        from bench.extractors.neural.pipeline import prepare_model, require_torch

        if self._model is None:
            require_torch(self.what)
            self._model = prepare_model(self.build_model(), settings)
        return self._model

    def extract(self, batch: Sequence[Any]) -> np.ndarray:
        """Features of decoded PIL images (the store's generic path; ``run_pipeline`` is
        the fast one)."""
        import torch

        from bench.extractors.neural.pipeline import forward

        settings = self.settings(0)
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        pixels = torch.from_numpy(np.stack([self.preprocess.to_array(im) for im in batch]))
        return forward(self.model(settings), pixels, self.preprocess, settings)

    def run_pipeline(self, items: Sequence[Item], on_batch: OnBatch, *, workers: int) -> bool:
        from bench.extractors.neural.pipeline import run

        if not items:
            return True
        settings = self.settings(workers)
        run(self.model(settings), [it.path for it in items], self.preprocess, on_batch,
            settings, self.dim)
        return True


class BuiltinOptions(NeuralOptions):
    use_head: bool = Field(False, description="SimCLR models: features through the "
                           "contrastive projection head (128-d) the weights file carries "
                           "(a converted checkpoint's head.*, or a fine-tuning checkpoint's "
                           "'head'), instead of the pooled encoder output")


class BuiltinNeuralExtractor(NeuralExtractor):
    Options: ClassVar[type[StrictOptions]] = BuiltinOptions
    spec: ClassVar[ModelSpec]

    def __init__(self, options: StrictOptions) -> None:
        super().__init__(options)
        if self.use_head and self.spec.family == "resnet":
            raise BenchError(f"{self.what}: use_head: {self.spec.name} has no contrastive "
                             "head (SimCLR models only)")

    @property
    def use_head(self) -> bool:
        return bool(getattr(self.options, "use_head", False))

    @property
    def dim(self) -> int:
        return HEAD_OUT if self.use_head else self.spec.dim

    @property
    def preprocess(self) -> Preprocess:
        return PRESETS[self.spec.preprocess]

    def describe_model(self) -> dict[str, Any]:
        return {"model": self.spec.name, **({"use_head": True} if self.use_head else {})}

    def build_model(self) -> Any:
        import torch

        from bench.extractors.neural.weights import fit, load_weights

        state, head_state = load_weights(self.opts.weights, self.what)
        if head_state is not None and self.spec.family != "resnet":
            # a fine-tuning checkpoint: its head loads (strictly) into the model's head
            state = {**state, **{f"head.{k}": v for k, v in head_state.items()}}
        # A converted SimCLR checkpoint may carry the contrastive head; load it strictly too.
        head = self.spec.family != "resnet" and any(k.startswith("head.") for k in state)
        if self.use_head and not head:
            raise BenchError(f"{self.what}: use_head: true, but {self.opts.weights} holds no "
                             "contrastive head (convert with --head, or a fine-tuning "
                             "checkpoint with 'head')")
        with torch.device("meta"):  # no time spent initialising weights about to be replaced
            model = self.spec.build(head=head)
        fit(model, state, self.opts.weights, self.what, assign=True)
        if not self.use_head:
            return model
        from bench.extractors.neural._simclr import Projected

        return Projected(model)


def _class_name(model: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[^0-9a-zA-Z]+", model)) + "Extractor"


for _spec in (*MODELS.values(), *MINI_MODELS.values()):
    _cls = type(_class_name(_spec.name), (BuiltinNeuralExtractor,), {
        "spec": _spec, "__module__": __name__,
        "__doc__": f"{_spec.name}: {_spec.dim}-d pooled features, {_spec.preprocess} "
                   "preprocessing.",
    })
    globals()[_cls.__name__] = register(_spec.name)(_cls)


# --- adapters for third-party model zoos ------------------------------------------------

class AdapterOptions(NeuralOptions):
    model: str = Field(description="the library's model name, e.g. resnet18")
    #: auto: the model family's published preset (inception-v3, efficientnet-b7), else
    #: imagenet
    preprocess: Literal["auto", "imagenet", "simclr", "inception-v3", "efficientnet-b7"] = (
        "auto")


class _Adapter(NeuralExtractor):
    Options: ClassVar[type[StrictOptions]] = AdapterOptions
    package: ClassVar[str] = ""

    def __init__(self, options: StrictOptions) -> None:
        super().__init__(options)
        self._dim: int | None = None

    @property
    def what(self) -> str:
        return f"extractor {self.package}:{self.options.model}"  # type: ignore[attr-defined]

    @property
    def preprocess(self) -> Preprocess:
        chosen = self.options.preprocess  # type: ignore[attr-defined]
        if chosen == "auto":
            chosen = preset_for_model(self.options.model)  # type: ignore[attr-defined]
        return PRESETS[chosen]

    def describe_model(self) -> dict[str, Any]:
        return {"model": f"{self.package}:{self.options.model}"}  # type: ignore[attr-defined]

    def library(self) -> Any:
        import importlib

        try:
            return importlib.import_module(self.package)
        except ImportError:
            raise MissingDependencyError(self.package, self.package, self.what) from None

    @property
    def dim(self) -> int:
        if self._dim is None:  # known once the model is built (build_model sets it)
            self.model(self.settings(0))
        assert self._dim is not None
        return self._dim


@register("torchvision")
class TorchvisionExtractor(_Adapter):
    """Any torchvision classification model; features = the input of its last Linear layer."""

    package = "torchvision"

    def build_model(self) -> Any:
        from torch import nn

        from bench.extractors.neural.weights import fit, load_state_dict

        tv = self.library()
        name = self.options.model  # type: ignore[attr-defined]
        try:
            model = tv.models.get_model(name, weights=None)
        except (ValueError, KeyError):
            raise BenchError(f"{self.what}: model: torchvision has no model {name!r}") from None
        fit(model, load_state_dict(self.opts.weights, self.what), self.opts.weights, self.what)
        last = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not last:
            raise BenchError(f"{self.what}: model: {name} has no Linear classifier to remove")
        path, linear = last[-1]
        parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
        setattr(parent, path.rpartition(".")[2], nn.Identity())
        self._dim = int(linear.in_features)
        return nn.Sequential(model, nn.Flatten(1))


@register("timm")
class TimmExtractor(_Adapter):
    """Any timm model; features = its pooled pre-classifier output (``num_features``)."""

    package = "timm"

    def build_model(self) -> Any:
        from torch import nn

        from bench.extractors.neural.weights import fit, load_state_dict

        timm = self.library()
        name = self.options.model  # type: ignore[attr-defined]
        try:
            model = timm.create_model(name, pretrained=False)
        except RuntimeError as exc:
            raise BenchError(f"{self.what}: model: {exc}") from None
        fit(model, load_state_dict(self.opts.weights, self.what), self.opts.weights, self.what)
        model.reset_classifier(0)
        self._dim = int(model.num_features)
        return nn.Sequential(model, nn.Flatten(1))


def adapter_section(name: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Map ``torchvision:resnet18`` / ``timm:vit_small_patch16_224`` to the registered
    adapter name plus its ``model:`` option; any other name passes through unchanged.
    (The registry reads ``package:Class`` as an import path, so the experiment loader
    must call this before looking the name up.)"""
    prefix, sep, model = name.partition(":")
    if not sep or prefix not in ("torchvision", "timm"):
        return name, options
    if not model:
        raise BenchError(f"extractor {name!r}: expected {prefix}:<model name>")
    if options.get("model", model) != model:
        raise BenchError(f"extractor {name!r}: model: {options['model']!r} contradicts the "
                         f"name; give the model once")
    return prefix, {**options, "model": model}
