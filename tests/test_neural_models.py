"""The neural architectures: names, sizes, TF-specific layers, strict weight loading."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.core.errors import BenchError, MissingDependencyError  # noqa: E402
from bench.extractors import registry  # noqa: E402
from bench.extractors.neural._simclr import (  # noqa: E402
    SelectiveKernel,
    tf_avg_pool_same_2x2,
    tf_max_pool_same,
)
from bench.extractors.neural.models import MODELS  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


SMALL = ["resnet50", "simclr-v1-r50-1x", "simclr-v2-r50-1x-sk0", "simclr-v2-r50-1x-sk1"]


def _build(name: str, seed: int = 0, head: bool = False):
    torch.manual_seed(seed)
    model = MODELS[name].build(head=head).eval()
    for m in model.modules():  # non-trivial BN statistics, so a mis-loaded buffer shows
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _extractor(name: str, weights: Path, **options):
    cls = registry.get(name)
    return cls(cls.Options.model_validate({"weights": str(weights), **options}))


def test_every_model_is_registered_with_its_feature_dimension():
    expected = {"resnet50": 2048, "resnet101": 2048, "resnet152": 2048,
                "wide_resnet50_2": 2048, "wide_resnet101_2": 2048,
                "simclr-v1-r50-1x": 2048, "simclr-v1-r50-2x": 4096, "simclr-v1-r50-4x": 8192}
    for depth in (50, 101, 152):
        for width in (1, 2, 3):
            for sk in (0, 1):
                expected[f"simclr-v2-r{depth}-{width}x-sk{sk}"] = 2048 * width
    assert set(MODELS) == set(expected)
    names = set(registry.names())
    assert set(expected) | {"torchvision", "timm"} <= names
    for name, dim in expected.items():
        ext = _extractor(name, Path("unused.pt"))
        assert ext.dim == dim and ext.family == "float" and ext.modality == "image"


# Parameter counts: torchvision's documented exact numbers; the SimCLR papers' tables
# (v1: ResNet-50 1x/2x/4x = 24M/94M/375M; v2 Table 1 incl. 795M for R152 3x+SK).
TORCHVISION_PARAMS = {"resnet50": 25_557_032, "resnet101": 44_549_160,
                      "resnet152": 60_192_808, "wide_resnet50_2": 68_883_240,
                      "wide_resnet101_2": 126_886_696}
SIMCLR_PARAMS_M = {"simclr-v1-r50-1x": 24, "simclr-v1-r50-2x": 94, "simclr-v1-r50-4x": 375,
                   "simclr-v2-r50-1x-sk1": 35, "simclr-v2-r50-2x-sk1": 140,
                   "simclr-v2-r152-3x-sk1": 795}


def _meta(name: str):
    with torch.device("meta"):
        return MODELS[name].build()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count_and_feature_shape_of_every_model_without_computing(name):
    """Shapes propagate on the meta device (no memory, no FLOPs), so even the 795M
    parameter network is checked; 224x224 input as in the experiments."""
    model = _meta(name)
    count = sum(p.numel() for p in model.parameters())
    if name in TORCHVISION_PARAMS:
        assert count == TORCHVISION_PARAMS[name]
    if name in SIMCLR_PARAMS_M:
        assert abs(count / 1e6 - SIMCLR_PARAMS_M[name]) < 0.6
    out = model(torch.empty(2, 3, 224, 224, device="meta"))
    assert tuple(out.shape) == (2, MODELS[name].dim)


@pytest.mark.parametrize("name", SMALL)
def test_random_weights_round_trip_strictly_and_give_finite_deterministic_features(
        name, tmp_path):
    model = _build(name)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    ext = _extractor(name, path)
    loaded = ext.build_model().eval()  # strict load from the file
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = model(x)
        got = loaded(x)
        again = loaded(x)
    assert got.shape == (3, MODELS[name].dim)
    assert torch.isfinite(got).all() and got.abs().sum() > 0
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(again, got, rtol=0, atol=0)
    # a different image gives a different feature: the input reaches the output
    assert not torch.allclose(got[0], got[1])


def test_simclr_head_is_loaded_when_the_file_carries_it(tmp_path):
    model = _build("simclr-v2-r50-1x-sk0", head=True)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    loaded = _extractor("simclr-v2-r50-1x-sk0", path).build_model().eval()
    assert loaded.head is not None
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        assert loaded.project(loaded(x)).shape == (2, 128)


def test_tf_same_max_pool_pads_right_and_bottom_only():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = tf_max_pool_same(x)  # windows rows/cols {0,1,2} and {2,3,(pad)}
    assert out.tolist() == [[[[10.0, 11.0], [14.0, 15.0]]]]
    # torchvision's symmetric padding puts the windows elsewhere
    assert torch.nn.functional.max_pool2d(x, 3, 2, 1).tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]


def test_tf_same_average_pool_averages_only_real_pixels():
    x = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    a = x.numpy()
    want = np.empty_like(a)
    for i in range(5):
        for j in range(4):
            want[..., i, j] = a[..., i:i + 2, j:j + 2].mean(axis=(-2, -1))
    np.testing.assert_allclose(tf_avg_pool_same_2x2(x).numpy(), want, rtol=1e-6)


def test_selective_kernel_with_neutral_gate_averages_its_two_branches():
    torch.manual_seed(0)
    sk = SelectiveKernel(8, 8, stride=1, sk_ratio=0.0625).eval()
    assert sk.fc1.out_channels == 32  # max(int(8 * 0.0625), 32)
    assert sk.conv.out_channels == 16 and sk.fc2.out_channels == 16
    torch.nn.init.zeros_(sk.fc2.weight)  # equal logits -> softmax 0.5 / 0.5
    x = torch.rand(2, 8, 6, 6)
    with torch.inference_mode():
        branches = torch.relu(sk.bn(sk.conv(x)))
        want = (branches[:, :8] + branches[:, 8:]) / 2
        torch.testing.assert_close(sk(x), want)
        torch.nn.init.normal_(sk.fc2.weight)  # a real gate: a per-channel convex mix
        out = sk(x)
    lo = torch.minimum(branches[:, :8], branches[:, 8:])
    hi = torch.maximum(branches[:, :8], branches[:, 8:])
    assert bool(((out >= lo - 1e-6) & (out <= hi + 1e-6)).all())
    assert not torch.allclose(out, want)


def test_weights_errors_name_the_file_and_the_problem(tmp_path):
    ext = _extractor("simclr-v1-r50-1x", tmp_path / "absent.pt")
    with pytest.raises(BenchError, match="absent.pt not found"):
        ext.build_model()
    with pytest.raises(BenchError, match="absent.pt not found"):
        ext.fingerprint()
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00 definitely not a checkpoint")
    with pytest.raises(BenchError, match="garbage.pt is not a weights-only torch checkpoint"):
        _extractor("simclr-v1-r50-1x", garbage).build_model()
    evil = tmp_path / "evil.pt"  # arbitrary pickled objects are refused, never executed
    torch.save({"state_dict": types.SimpleNamespace(a=1)}, evil)
    with pytest.raises(BenchError, match="evil.pt is not a weights-only"):
        _extractor("simclr-v1-r50-1x", evil).build_model()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(BenchError, match="plain.pkl"):
        _extractor("simclr-v1-r50-1x", plain).build_model()
    other = tmp_path / "resnet50.pt"
    torch.save(_build("resnet50").state_dict(), other)
    with pytest.raises(BenchError, match=r"do not fit this model: missing stem\.0\.weight"):
        _extractor("simclr-v1-r50-1x", other).build_model()
    wider = tmp_path / "sk0.pt"
    torch.save(_build("simclr-v2-r50-1x-sk0").state_dict(), wider)
    _extractor("simclr-v1-r50-1x", wider).build_model()  # v1 == v2 sk0 architecture
    state = torch.load(wider, weights_only=True)
    state["stem.0.weight"] = torch.zeros(128, 3, 7, 7)  # a 2x stem in a 1x file
    torch.save(state, wider)
    with pytest.raises(BenchError, match=r"wrong shape \(file vs model\) stem\.0\.weight "
                       r"\(128, 3, 7, 7\) vs \(64, 3, 7, 7\)"):
        _extractor("simclr-v1-r50-1x", wider).build_model()


def test_registry_works_without_torch_and_extraction_says_what_to_install():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from bench.extractors import registry\n"
        "names = registry.names()\n"
        "assert 'simclr-v2-r50-2x-sk1' in names and 'resnet50' in names, names\n"
        "cls = registry.get('simclr-v2-r50-2x-sk1')\n"
        "ext = cls(cls.Options.model_validate({'weights': 'w.pt'}))\n"
        "assert ext.dim == 4096\n"
        "from bench.core.errors import MissingDependencyError\n"
        "try:\n"
        "    ext.run_pipeline([object()], lambda *a: None, workers=0)\n"
        "except MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], timeout=60)
    assert out.returncode == 0, out.stderr
    assert "torch is required" in out.stdout and "featbench[neural]" in out.stdout


def test_torchvision_resnet50_matches_ours_numerically():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    theirs = tv.models.resnet50(weights=None).eval()
    ours = MODELS["resnet50"].build().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.fc = torch.nn.Identity()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# --- third-party adapters ----------------------------------------------------------------

def test_adapters_say_which_package_is_missing(tmp_path, monkeypatch):
    for package in ("torchvision", "timm"):
        monkeypatch.setitem(sys.modules, package, None)  # as if not installed
        cls = registry.get(package)
        ext = cls(cls.Options.model_validate({"model": "resnet18", "weights": "w.pt"}))
        with pytest.raises(MissingDependencyError, match=rf"{package} is required.*"
                           rf"featbench\[{package}\]"):
            ext.dim  # noqa: B018


def test_torchvision_adapter_strips_the_classifier(tmp_path, monkeypatch):
    """With a stand-in torchvision whose model zoo returns our torchvision-layout ResNet,
    the adapter loads the file strictly and yields the pooled 2048-d features."""
    calls = []

    def get_model(name, weights=None):
        calls.append((name, weights))
        if name != "resnet50":
            raise ValueError(name)
        return MODELS["resnet50"].build()

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    model = _build("resnet50")
    path = tmp_path / "tv.pt"
    torch.save(model.state_dict(), path)
    cls = registry.get("torchvision")
    ext = cls(cls.Options.model_validate({"model": "resnet50", "weights": str(path),
                                          "channels_last": False}))
    assert ext.dim == 2048 and calls == [("resnet50", None)]
    assert ext.fingerprint()["model"] == "torchvision:resnet50"
    net = ext.model(ext.settings(0))
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), model(x), rtol=0, atol=0)
    bad = cls(cls.Options.model_validate({"model": "nope", "weights": str(path)}))
    with pytest.raises(BenchError, match="torchvision has no model 'nope'"):
        bad.dim  # noqa: B018


def test_timm_adapter_uses_the_pre_classifier_features(tmp_path, monkeypatch):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = MODELS["resnet50"].build()
            self.num_features = 2048
            self.classifier = torch.nn.Linear(2048, 10)

        def reset_classifier(self, num_classes):
            assert num_classes == 0
            self.classifier = torch.nn.Identity()

        def forward(self, x):
            return self.classifier(self.body(x))

    fake = types.ModuleType("timm")
    fake.create_model = lambda name, pretrained: Net()
    monkeypatch.setitem(sys.modules, "timm", fake)
    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path / "timm.pt"
    torch.save(net.state_dict(), path)
    cls = registry.get("timm")
    ext = cls(cls.Options.model_validate({"model": "anything", "weights": str(path),
                                          "preprocess": "simclr", "channels_last": False}))
    assert ext.dim == 2048 and ext.preprocess.name == "simclr"
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(ext.model(ext.settings(0))(x), net.body(x), rtol=0, atol=0)


def test_prefixed_adapter_names_map_to_the_adapter_and_its_model_option():
    from bench.extractors.neural.extractor import adapter_section

    assert adapter_section("torchvision:resnet18", {"weights": "w.pt"}) == (
        "torchvision", {"weights": "w.pt", "model": "resnet18"})
    assert adapter_section("timm:vit_small_patch16_224", {}) == (
        "timm", {"model": "vit_small_patch16_224"})
    assert adapter_section("resnet50", {"weights": "w"}) == ("resnet50", {"weights": "w"})
    assert adapter_section("mypkg.mod:Cls", {}) == ("mypkg.mod:Cls", {})
    with pytest.raises(BenchError, match="contradicts"):
        adapter_section("timm:a", {"model": "b"})
    with pytest.raises(BenchError, match="expected timm:<model name>"):
        adapter_section("timm:", {})
