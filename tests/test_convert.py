"""TF SimCLR checkpoint conversion, tested without TensorFlow on synthetic variables.

The synthetic checkpoints are written from the published TF code's structure (the
order in which ``resnet_v1_generator`` creates its layers), independently of our
PyTorch module order; each variable holds its own TF index, so the test can check
that the N-th TF layer lands in the N-th layer our forward pass *executes*.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from bench.cli.neural import convert  # noqa: E402
from bench.core.errors import BenchError, MissingDependencyError  # noqa: E402
from bench.extractors import registry  # noqa: E402
from bench.extractors.neural.convert import (  # noqa: E402
    checkpoint_prefix,
    convert_simclr,
    detect_model,
)
from bench.extractors.neural.models import DEPTHS, MODELS  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tf_layers(depth: int, width: int, sk: bool) -> list[tuple[str, tuple[int, ...]]]:
    """("conv", HWIO kernel shape) / ("bn", (channels,)) in TF creation order, transcribed
    from the TF ResNet generator: stem, then per block [projection conv+BN], conv1x1+BN,
    3x3 conv+BN (or the SK conv: conv+BN, 1x1 conv+BN, 1x1 conv), conv1x1+BN."""
    out: list[tuple[str, tuple[int, ...]]] = []

    def conv(k: int, cin: int, cout: int) -> None:
        out.append(("conv", (k, k, cin, cout)))

    def bn(c: int) -> None:
        out.append(("bn", (c,)))

    if sk:
        conv(3, 3, 32 * width), bn(32 * width)
        conv(3, 32 * width, 32 * width), bn(32 * width)
        conv(3, 32 * width, 64 * width), bn(64 * width)
    else:
        conv(7, 3, 64 * width), bn(64 * width)
    cin = 64 * width
    for blocks, filters in zip(DEPTHS[depth], (64, 128, 256, 512), strict=True):
        f = filters * width
        for b in range(blocks):
            if b == 0:
                conv(1, cin, 4 * f), bn(4 * f)
            conv(1, cin, f), bn(f)
            if sk:
                mid = max(int(f * 0.0625), 32)
                conv(3, f, 2 * f), bn(2 * f), conv(1, f, mid), bn(mid), conv(1, mid, 2 * f)
            else:
                conv(3, f, f), bn(f)
            conv(1, f, 4 * f), bn(4 * f)
            cin = 4 * f
    return out


def tf_variables(depth: int, width: int, sk: bool, prefix: str, *, shapes_only: bool = False,
                 head: str | None = None) -> dict[str, np.ndarray | None]:
    """Variables named like the published checkpoints; conv N is filled with N, BN N's
    gamma/beta/mean/var with N + 0.1/0.2/0.3/0.4, so their destination is recognisable."""
    out: dict[str, np.ndarray | None] = {}
    n_conv = n_bn = 0
    for kind, shape in tf_layers(depth, width, sk):
        if kind == "conv":
            name = f"{prefix}conv2d{f'_{n_conv}' if n_conv else ''}/kernel"
            value = np.full(shape, n_conv, np.float32)
            out[name] = None if shapes_only and n_conv else value
            n_conv += 1
        else:
            base = f"{prefix}batch_normalization{f'_{n_bn}' if n_bn else ''}/"
            for j, part in enumerate(("gamma", "beta", "moving_mean", "moving_variance")):
                out[base + part] = None if shapes_only else np.full(shape, n_bn + 0.1 * (j + 1),
                                                                    np.float32)
            n_bn += 1
    if head is not None:
        dim = 2048 * width
        for j, out_dim in enumerate((dim, dim, 128)):
            out[f"{head}nl_{j}/dense/kernel"] = np.full((dim, out_dim), 100 + j, np.float32)
            for part in ("gamma", "moving_mean", "moving_variance") + (("beta",) if j < 2 else ()):
                out[f"{head}nl_{j}/batch_normalization/{part}"] = np.full(out_dim, 200 + j,
                                                                          np.float32)
    return out


def _execution_order(model, kind) -> list[str]:
    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(names[mod]))
             for m in model.modules() if isinstance(m, kind)]
    with torch.inference_mode():
        model(torch.rand(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return order


@pytest.mark.parametrize("sk", [False, True])
def test_v2_ema_variables_land_in_the_layers_the_forward_pass_runs_in_tf_order(sk):
    variables = tf_variables(50, 1, sk, "ema_model/base_model/", head="ema_model/head_contrastive/")
    # decoys the converter must ignore: raw (non-EMA) weights, optimiser state, supervised head
    variables["base_model/conv2d/kernel"] = np.zeros((7, 7, 3, 64), np.float32)
    variables["ema_model/base_model/conv2d/kernel/Momentum"] = np.zeros(1, np.float32)
    variables["head_supervised/linear_layer/dense/kernel"] = np.zeros((2048, 1000), np.float32)
    variables = dict(reversed(list(variables.items())))  # no reliance on listing order
    name, state = convert_simclr(variables, 2, ema=True, head=True)
    assert name == f"simclr-v2-r50-1x-sk{int(sk)}"
    model = MODELS[name].build(head=True).eval()
    model.load_state_dict(state, strict=True)
    convs = _execution_order(model, torch.nn.Conv2d)
    bns = _execution_order(model, torch.nn.BatchNorm2d)
    assert len(convs) == len(set(convs)) == sum(1 for v in state.values() if v.dim() == 4)
    for i, module in enumerate(convs):
        assert torch.all(state[f"{module}.weight"] == i), (i, module)
    for i, module in enumerate(bns):
        for key, add in (("weight", 0.1), ("bias", 0.2), ("running_mean", 0.3),
                         ("running_var", 0.4)):
            torch.testing.assert_close(state[f"{module}.{key}"],
                                       torch.full_like(state[f"{module}.{key}"], i + add))
    # the head: dense kernels transposed, the last BN without beta gets a zero shift
    assert state["head.0.weight"].shape == (2048, 2048) and torch.all(state["head.0.weight"] == 100)
    assert state["head.6.weight"].shape == (128, 2048) and torch.all(state["head.6.weight"] == 102)
    assert torch.all(state["head.7.bias"] == 0) and torch.all(state["head.4.bias"] == 201)


def test_conv_kernels_are_transposed_from_hwio_to_oihw():
    variables = tf_variables(50, 1, False, "base_model/")
    stem = np.random.default_rng(0).standard_normal((7, 7, 3, 64)).astype(np.float32)
    variables["base_model/conv2d/kernel"] = stem
    name, state = convert_simclr(variables, 1)
    assert name == "simclr-v1-r50-1x"
    w = state["stem.0.weight"].numpy()
    assert w.shape == (64, 3, 7, 7)
    assert w[5, 2, 1, 6] == stem[1, 6, 2, 5]
    np.testing.assert_array_equal(w, stem.transpose(3, 2, 0, 1))


@pytest.mark.parametrize("name", sorted(n for n in MODELS if n.startswith("simclr")))
def test_architecture_is_read_off_the_variables(name):
    spec = MODELS[name]
    version = 1 if "v1" in name else 2
    prefix = "ema_model/base_model/" if version == 2 else "base_model/"
    variables = tf_variables(spec.depth, spec.width, spec.sk, prefix, shapes_only=True)
    assert detect_model(variables, version) == name


def test_broken_checkpoints_are_reported_not_half_converted():
    good = tf_variables(50, 1, False, "ema_model/base_model/")
    with pytest.raises(BenchError, match="try --no-ema"):
        convert_simclr(tf_variables(50, 1, False, "base_model/"), 2, ema=True)
    missing = dict(good)
    del missing["ema_model/base_model/batch_normalization_7/moving_variance"]
    with pytest.raises(BenchError, match="batch_normalization_7/moving_variance is missing"):
        convert_simclr(missing, 2)
    gap = dict(good)
    del gap["ema_model/base_model/conv2d_5/kernel"]
    with pytest.raises(BenchError, match=r"conv2d variables are not numbered.*missing \[5\]"):
        convert_simclr(gap, 2)
    extra = dict(good)
    extra["ema_model/base_model/se/dense/kernel"] = np.zeros((4, 4), np.float32)
    with pytest.raises(BenchError, match="1 variables were not converted, e.g. "
                       "ema_model/base_model/se/dense/kernel"):
        convert_simclr(extra, 2)
    wrong = dict(good)
    wrong["ema_model/base_model/conv2d_3/kernel"] = np.zeros((3, 3, 64, 32), np.float32)
    with pytest.raises(BenchError, match="conv2d_3/kernel has shape"):
        convert_simclr(wrong, 2)
    with pytest.raises(BenchError, match="SimCLR v2 only"):
        convert_simclr(tf_variables(50, 1, False, "base_model/"), 1, head=True)
    with pytest.raises(BenchError, match="contrastive head layers"):
        convert_simclr(good, 2, head=True)


def test_checkpoint_prefix_accepts_folder_prefix_or_index(tmp_path):
    (tmp_path / "model.ckpt-250228.index").write_bytes(b"")
    (tmp_path / "model.ckpt-250228.data-00000-of-00001").write_bytes(b"")
    prefix = str(tmp_path / "model.ckpt-250228")
    assert checkpoint_prefix(tmp_path) == prefix
    assert checkpoint_prefix(Path(prefix)) == prefix
    assert checkpoint_prefix(Path(prefix + ".index")) == prefix
    (tmp_path / "model.ckpt-1000.index").write_bytes(b"")
    with pytest.raises(BenchError, match="found 2"):
        checkpoint_prefix(tmp_path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1000"\n')
    assert checkpoint_prefix(tmp_path) == str(tmp_path / "model.ckpt-1000")
    with pytest.raises(BenchError, match="no TensorFlow checkpoint"):
        checkpoint_prefix(tmp_path / "nothing")


def test_cli_without_tensorflow_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    (tmp_path / "model.ckpt-1.index").write_bytes(b"")
    result = CliRunner().invoke(convert, ["simclr-v2", str(tmp_path), str(tmp_path / "o.pt")])
    assert result.exit_code != 0
    assert isinstance(result.exception, MissingDependencyError)
    assert "tensorflow is required" in str(result.exception)
    assert "featbench[convert]" in str(result.exception)


def test_cli_converts_a_checkpoint_that_the_extractor_then_loads(tmp_path, monkeypatch):
    """End to end with a stand-in for TensorFlow's checkpoint reader."""
    variables = tf_variables(50, 1, True, "ema_model/base_model/")
    rng = np.random.default_rng(0)  # realistic values, so the features are meaningful
    for k, v in variables.items():
        if k.endswith("/kernel"):
            fan_in = int(np.prod(v.shape[:-1]))
            variables[k] = (rng.standard_normal(v.shape) * np.sqrt(2 / fan_in)).astype(np.float32)
        elif k.endswith(("gamma", "moving_variance")):
            variables[k] = np.ones_like(v)
        else:
            variables[k] = np.zeros_like(v)
    variables["ema_model/base_model/conv2d/kernel/Momentum"] = np.zeros(1, np.float32)

    class Reader:
        def get_variable_to_shape_map(self):
            return {k: list(np.shape(v)) for k, v in variables.items()}

        def get_tensor(self, name):
            return variables[name]

    seen = []
    fake = types.ModuleType("tensorflow")
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None)
    fake.train = types.SimpleNamespace(load_checkpoint=lambda p: seen.append(p) or Reader())
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    ckpt = tmp_path / "r50_1x_sk1"
    ckpt.mkdir()
    (ckpt / "model.ckpt-250228.index").write_bytes(b"")
    out = tmp_path / "weights" / "r50_1x_sk1.pt"
    result = CliRunner().invoke(convert, ["simclr-v2", str(ckpt), str(out)])
    assert result.exit_code == 0, result.output
    assert "simclr-v2-r50-1x-sk1" in result.output and seen == [str(ckpt / "model.ckpt-250228")]
    cls = registry.get("simclr-v2-r50-1x-sk1")
    ext = cls(cls.Options.model_validate({"weights": str(out)}))
    model = ext.build_model().eval()  # strict load of the converted file
    stem = variables["ema_model/base_model/conv2d/kernel"]
    np.testing.assert_array_equal(model.stem[0].weight.detach().numpy(),
                                  stem.transpose(3, 2, 0, 1))
    with torch.inference_mode():
        feats = model(torch.rand(2, 3, 64, 64))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
