"""Published TensorFlow SimCLR checkpoints -> state dicts for our PyTorch encoders.

The TF code names variables by layer type and creation order within the model
scope: ``base_model/conv2d[_N]/kernel`` and ``base_model/batch_normalization[_N]/
{gamma,beta,moving_mean,moving_variance}``, N counting up in the order the layers
were built (a block's projection shortcut before its main path). Our SimCLR
modules are registered in that same order, so the N-th TF conv is our N-th
``Conv2d`` and likewise for BatchNorm. Kernels are HWIO in TF and OIHW in torch;
dense kernels are (in, out) in TF and (out, in) in torch. v2 checkpoints also hold
EMA copies under ``ema_model/`` (the published evaluation weights); variables
ending in ``/Momentum`` are optimiser state and are ignored.

The mapping works on any ``{tf_variable_name: array}`` mapping and never needs
TensorFlow; only reading the checkpoint file does (the ``convert`` extra). The
architecture (depth, width, selective kernels) is read off the variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError, MissingDependencyError
from bench.extractors.neural.models import DEPTHS, MODELS, simclr_name

_CONV = re.compile(r"^conv2d(?:_(\d+))?/kernel$")
_BN = re.compile(r"^batch_normalization(?:_(\d+))?/(gamma|beta|moving_mean|moving_variance)$")
_HEAD = re.compile(r"^nl_(\d+)/(dense/kernel|batch_normalization/"
                   r"(?:gamma|beta|moving_mean|moving_variance))$")


def prefixes(version: int, ema: bool) -> tuple[str, str]:
    """(encoder prefix, contrastive head prefix) of the variables to convert."""
    root = "ema_model/" if version == 2 and ema else ""
    return f"{root}base_model/", f"{root}head_contrastive/"


def _index(match: re.Match[str]) -> int:
    return int(match.group(1) or 0)


def _numbered(names: list[str], pattern: re.Pattern[str], what: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for name in names:
        m = pattern.match(name)
        if m:
            out.setdefault(_index(m), []).append(name)
    if sorted(out) != list(range(len(out))):
        gaps = sorted(set(range(max(out, default=-1) + 1)) - set(out))[:5]
        raise BenchError(f"checkpoint: {what} variables are not numbered 0..{len(out) - 1} "
                         f"(missing {gaps})")
    return out


def _conv_count(depth: int, sk: bool) -> int:
    blocks = sum(DEPTHS[depth])
    return (3 if sk else 1) + blocks * (5 if sk else 3) + 4  # stem + blocks + projections


def detect_model(variables: Mapping[str, Any], version: int, ema: bool = True) -> str:
    """The model table name matching the checkpoint's encoder variables."""
    prefix, _ = prefixes(version, ema)
    names = [k[len(prefix):] for k in variables if k.startswith(prefix)
             and not k.endswith("/Momentum")]
    if not names:
        hint = " (try --no-ema)" if version == 2 and ema else ""
        raise BenchError(f"checkpoint: no variables under {prefix!r}{hint}; is this a SimCLR "
                         f"v{version} checkpoint?")
    if "conv2d/kernel" not in names:
        raise BenchError(f"checkpoint: {prefix}conv2d/kernel (the stem convolution) is missing")
    kh, kw, cin, cout = np.shape(variables[prefix + "conv2d/kernel"])
    sk = (kh, kw) == (3, 3)
    width, rest = divmod(cout, 32 if sk else 64)
    n_convs = len(_numbered(names, _CONV, "conv2d"))
    _numbered(names, _BN, "batch_normalization")
    depth = next((d for d in DEPTHS if _conv_count(d, sk) == n_convs), None)
    name = simclr_name(version, depth or 0, width, sk)
    if cin != 3 or rest or depth is None or name not in MODELS:
        raise BenchError(
            f"checkpoint: {n_convs} convolutions with a {kh}x{kw}x{cin}->{cout} stem match no "
            f"SimCLR v{version} encoder (known: ResNet-50/101/152, width 1-4x, sk0/sk1)")
    return name


def _modules(model: Any, kind: Any, skip: str = "head") -> list[tuple[str, Any]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, kind) and not n.startswith(skip)]


def _tensor(array: Any) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _put(state: dict[str, Any], key: str, value: Any, expected: tuple[int, ...],
         source: str) -> None:
    if tuple(value.shape) != expected:
        raise BenchError(f"checkpoint: {source} has shape {tuple(value.shape)} (after "
                         f"transposing); {key} expects {expected}")
    state[key] = value


def _bn(state: dict[str, Any], module: str, bn: Any, read: Any, base: str) -> None:
    import torch

    n = bn.num_features
    beta = read(f"{base}/beta") if read.has(f"{base}/beta") else np.zeros(n, np.float32)
    for ours, theirs in (("weight", read(f"{base}/gamma")), ("bias", beta),
                         ("running_mean", read(f"{base}/moving_mean")),
                         ("running_var", read(f"{base}/moving_variance"))):
        _put(state, f"{module}.{ours}", _tensor(theirs), (n,), f"{base}/...")
    state[f"{module}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)


class _Reader:
    """Reads variables under a prefix, remembering which were used."""

    def __init__(self, variables: Mapping[str, Any], prefix: str) -> None:
        self.variables, self.prefix = variables, prefix
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return self.prefix + name in self.variables

    def __call__(self, name: str) -> np.ndarray:
        if not self.has(name):
            raise BenchError(f"checkpoint: variable {self.prefix}{name} is missing")
        self.used.add(self.prefix + name)
        return np.asarray(self.variables[self.prefix + name])

    def unused(self) -> list[str]:
        return sorted(k for k in self.variables if k.startswith(self.prefix)
                      and not k.endswith("/Momentum") and k not in self.used)


def convert_simclr(variables: Mapping[str, Any], version: int, *, ema: bool = True,
                   head: bool = False) -> tuple[str, dict[str, Any]]:
    """TF variables -> (model name, state dict that our encoder loads with strict=True)."""
    from torch import nn

    if head and version != 2:
        raise BenchError("checkpoint: the contrastive head is converted for SimCLR v2 only")
    name = detect_model(variables, version, ema)
    model = _meta_model(name, head)
    prefix, head_prefix = prefixes(version, ema)
    read = _Reader(variables, prefix)
    names = [k[len(prefix):] for k in variables if k.startswith(prefix)]
    convs = _numbered(names, _CONV, "conv2d")
    bns = _numbered(names, _BN, "batch_normalization")
    our_convs, our_bns = _modules(model, nn.Conv2d), _modules(model, nn.BatchNorm2d)
    if (len(convs), len(bns)) != (len(our_convs), len(our_bns)):
        raise BenchError(f"checkpoint: {len(convs)} conv / {len(bns)} batch-norm layers, but "
                         f"{name} has {len(our_convs)} / {len(our_bns)}")
    state: dict[str, Any] = {}
    for i, (module, conv) in enumerate(our_convs):
        tf_name = "conv2d" + (f"_{i}" if i else "") + "/kernel"
        _put(state, f"{module}.weight", _tensor(read(tf_name).transpose(3, 2, 0, 1)),
             tuple(conv.weight.shape), prefix + tf_name)
    for i, (module, bn) in enumerate(our_bns):
        _bn(state, module, bn, read, "batch_normalization" + (f"_{i}" if i else ""))
    leftover = read.unused()
    if head:
        leftover += _convert_head(model, variables, head_prefix, state)
    if leftover:
        raise BenchError(f"checkpoint: {len(leftover)} variables were not converted, e.g. "
                         f"{', '.join(leftover[:3])} (an architecture this converter "
                         "does not know?)")
    return name, state


def _meta_model(name: str, head: bool) -> Any:
    """The model's structure without allocating its (up to 3 GB of) random weights."""
    import torch

    with torch.device("meta"):
        return MODELS[name].build(head=head)


def _convert_head(model: Any, variables: Mapping[str, Any], prefix: str,
                  state: dict[str, Any]) -> list[str]:
    from torch import nn

    read = _Reader(variables, prefix)
    layers = [k[len(prefix):] for k in variables if k.startswith(prefix)]
    found = sorted({int(m.group(1)) for k in layers if (m := _HEAD.match(k))})
    linears = _modules(model.head, nn.Linear, skip="-")
    norms = _modules(model.head, nn.BatchNorm1d, skip="-")
    if found != list(range(len(linears))):
        raise BenchError(f"checkpoint: expected contrastive head layers nl_0..nl_"
                         f"{len(linears) - 1} under {prefix!r}, found {found or 'none'}")
    for j, ((lin, linear), (norm, bn)) in enumerate(zip(linears, norms, strict=True)):
        _put(state, f"head.{lin}.weight", _tensor(read(f"nl_{j}/dense/kernel").T),
             tuple(linear.weight.shape), f"{prefix}nl_{j}/dense/kernel")
        _bn(state, f"head.{norm}", bn, read, f"nl_{j}/batch_normalization")
    return read.unused()


# --- reading checkpoints (TensorFlow) ------------------------------------------------------

def checkpoint_prefix(path: Path) -> str:
    """A TF checkpoint prefix from a directory, a prefix or its ``.index`` file."""
    path = Path(path)
    if path.is_dir():
        index = sorted(path.glob("*.index"))
        if len(index) == 1:
            return str(index[0])[: -len(".index")]
        state = path / "checkpoint"
        if index and state.is_file():  # TF's pointer file names the latest checkpoint
            m = re.search(r'^model_checkpoint_path:\s*"(.+)"', state.read_text(), re.M)
            if m:
                found = Path(m.group(1))
                return str(found if found.is_absolute() else path / found)
        raise BenchError(f"{path}: expected one TensorFlow checkpoint (*.index), found "
                         f"{len(index)}; give the checkpoint prefix instead")
    if path.suffix == ".index" and path.is_file():
        return str(path)[: -len(".index")]
    if Path(f"{path}.index").is_file():
        return str(path)
    raise BenchError(f"{path}: no TensorFlow checkpoint here (expected a folder with "
                     "model.ckpt-N.index, or the prefix model.ckpt-N)")


class _CheckpointVariables(Mapping[str, Any]):
    """Lazy mapping over a TF checkpoint: a tensor is read only when converted."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.shapes = reader.get_variable_to_shape_map()

    def __getitem__(self, name: str) -> Any:
        if name not in self.shapes:
            raise KeyError(name)
        return self.reader.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def read_tf_checkpoint(path: Path) -> Mapping[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError("tensorflow", "convert",
                                     "reading TensorFlow SimCLR checkpoints") from None
    prefix = checkpoint_prefix(path)
    try:
        return _CheckpointVariables(tf.train.load_checkpoint(prefix))
    except Exception as exc:  # noqa: BLE001 - TF raises its own error types
        raise BenchError(f"{path}: TensorFlow could not read the checkpoint: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                         ) from None


def convert_checkpoint(kind: str, checkpoint: Path, out: Path, *, ema: bool = True,
                       head: bool = False) -> tuple[str, int]:
    """``bench convert``: read, map, save atomically; returns (model name, tensor count)."""
    from bench.extractors.neural.pipeline import require_torch

    torch = require_torch("bench convert")
    version = {"simclr-v1": 1, "simclr-v2": 2}[kind]
    variables = read_tf_checkpoint(checkpoint)
    name, state = convert_simclr(variables, version, ema=ema, head=head)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, out)
    return name, len(state)
