"""Fidelity with the original study: its preprocessing, checkpoints, feature files and
memes subset, each made by the test in the study's own format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from bench.extractors.neural import preprocess as pp


def test_imagenet_preset_resizes_with_lanczos_not_bilinear():
    image = Image.fromarray(data.rocket())
    got = pp.PRESETS["imagenet"].to_array(image)
    lanczos = np.asarray(image.resize((256, 256), Image.Resampling.LANCZOS))[16:240, 16:240]
    bilinear = np.asarray(image.resize((256, 256), Image.Resampling.BILINEAR))[16:240, 16:240]
    np.testing.assert_array_equal(got, lanczos)
    assert not np.array_equal(got, bilinear)


@pytest.mark.parametrize(("model", "preset", "crop"), [
    ("inception_v3", "inception-v3", 299), ("efficientnet_b7", "efficientnet-b7", 600),
    ("tf_efficientnet_b7", "efficientnet-b7", 600), ("resnet18", "imagenet", 224)])
def test_model_family_presets(model: str, preset: str, crop: int):
    assert pp.preset_for_model(model) == preset
    image = Image.fromarray(data.astronaut())  # 512 x 512
    if crop > 512:
        image = image.resize((700, 640))
    out = pp.PRESETS[preset].to_array(image)
    assert out.shape == (crop, crop, 3)


def test_inception_preset_matches_torchvision_eval_transform():
    image = Image.fromarray(data.rocket())  # 640 x 427: shorter side 427 -> 342
    p = pp.PRESETS["inception-v3"]
    assert p.resized_size(640, 427) == (int(342 * 640 / 427), 342)
    resized = image.resize(p.resized_size(640, 427), Image.Resampling.BILINEAR)
    w, h = resized.size
    top, left = int(round((h - 299) / 2.0)), int(round((w - 299) / 2.0))
    want = np.asarray(resized.crop((left, top, left + 299, top + 299)))
    np.testing.assert_array_equal(p.to_array(image), want)


def test_adapter_options_default_to_the_family_preset():
    from bench.extractors.neural.extractor import AdapterOptions, TorchvisionExtractor

    ext = TorchvisionExtractor(AdapterOptions(model="inception_v3", weights="w.pt"))
    assert ext.preprocess.name == "inception-v3"
    ext = TorchvisionExtractor(AdapterOptions(model="inception_v3", weights="w.pt",
                                              preprocess="imagenet"))
    assert ext.preprocess.name == "imagenet"


# --- checkpoints in the fine-tuning layout {'encoder': ..., 'head': ...} -------------------

def _mini_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from bench.extractors.neural.models import MINI_MODELS

    torch.manual_seed(0)
    model = MINI_MODELS["simclr-mini-r18"].build(head=True).eval()
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    head = {k.removeprefix("head."): v for k, v in model.state_dict().items()
            if k.startswith("head.")}
    path = tmp_path / "epoch_3.pth"
    torch.save({"encoder": encoder, "head": head, "epoch": 3}, path)
    return model, path


def _extract(path, **options):
    torch = pytest.importorskip("torch")
    from bench.extractors import registry

    cls = registry.get("simclr-mini-r18")
    ext = cls(cls.Options.model_validate({"weights": str(path), "device": "cpu", **options}))
    images = [Image.fromarray(data.astronaut()), Image.fromarray(data.rocket())]
    with torch.no_grad():
        return ext, ext.extract(images)


def test_encoder_head_checkpoint_loads_encoder_and_optionally_the_head(tmp_path):
    torch = pytest.importorskip("torch")
    model, path = _mini_checkpoint(tmp_path)
    ext, pooled = _extract(path)
    assert pooled.shape == (2, ext.dim) == (2, 128)  # the mini encoder's pooled width
    ext_h, projected = _extract(path, use_head=True)
    assert projected.shape == (2, 128) and ext_h.dim == 128
    assert ext_h.fingerprint()["use_head"] is True and "use_head" not in ext.fingerprint()
    from bench.extractors.neural.preprocess import PRESETS

    pixels = torch.from_numpy(np.stack([PRESETS["simclr-mini"].to_array(im) for im in (
        Image.fromarray(data.astronaut()), Image.fromarray(data.rocket()))]))
    x = PRESETS["simclr-mini"].to_model_input(pixels)
    with torch.no_grad():
        np.testing.assert_allclose(pooled, model(x).numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(projected, model.project(model(x)).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_use_head_without_a_head_is_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    from bench.core.errors import BenchError

    model, _ = _mini_checkpoint(tmp_path)
    path = tmp_path / "encoder_only.pth"
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("head.")}, path)
    with pytest.raises(BenchError, match="holds no contrastive head"):
        _extract(path, use_head=True)
    from bench.extractors import registry

    cls = registry.get("resnet50")
    with pytest.raises(BenchError, match="has no contrastive head"):
        cls(cls.Options.model_validate({"weights": str(path), "use_head": True}))


# --- the study's Features/<set>-<algo>_features.npy + _map_to_names.npy ----------------------

def _study_pair(folder, names, protocol=None):
    folder.mkdir(parents=True, exist_ok=True)
    feats = np.random.default_rng(0).standard_normal((len(names), 8)).astype(np.float32)
    np.save(folder / "BSDS500-SimCLR_features.npy", feats)
    array = np.empty(len(names), dtype=object)
    array[:] = names
    path = folder / "BSDS500-SimCLR_map_to_names.npy"
    if protocol is None:
        np.save(path, array, allow_pickle=True)
    else:  # an older numpy / Python: GLOBAL, BINPUT, protocol-2 bytes via _codecs.encode
        import pickle

        with open(path, "wb") as fh:
            np.lib.format.write_array_header_1_0(
                fh, np.lib.format.header_data_from_array_1_0(array))
            pickle.dump(array, fh, protocol=protocol)
    return feats, path


@pytest.mark.parametrize("protocol", [None, 2, 3])
def test_study_feature_files_load_by_name_without_unpickling(tmp_path, monkeypatch, protocol):
    import pickle

    from bench.extractors.precomputed import FeatureFile, read_feature_file

    names = ["BSDS500/100075.jpg", b"bytes_name.png", "ünïcode.png", "x" * 300]
    feats, _ = _study_pair(tmp_path / "Features", names, protocol)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the names file was unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    ids, got = read_feature_file(FeatureFile(
        path=str(tmp_path / "Features" / "BSDS500-SimCLR_features.npy")))
    assert ids == ["BSDS500/100075.jpg", "bytes_name.png", "ünïcode.png", "x" * 300]
    np.testing.assert_array_equal(got, feats)


@pytest.mark.parametrize(("bad", "why"), [
    (["a.png", 3], "name 1 is a int"), (["a.png", 2.5], "opcode BINFLOAT"),
    (["a.png", {"x": 1}], "opcode EMPTY_DICT"), (["a.png", ["b.png"]], "name 1 is a list"),
    (["a.png", np.float32(1.0)], "refers to numpy"),
])
def test_names_holding_anything_but_strings_are_refused_in_one_line(tmp_path, bad, why):
    from bench.core.errors import BenchError
    from bench.extractors.precomputed import FeatureFile, read_feature_file

    _study_pair(tmp_path, bad)
    with pytest.raises(BenchError, match=why) as info:
        read_feature_file(FeatureFile(path=str(tmp_path / "BSDS500-SimCLR_features.npy")))
    assert "\n" not in str(info.value) and "never unpickled" in str(info.value)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    import pickle

    from bench.core.errors import BenchError
    from bench.extractors.name_arrays import read_name_array

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    array = np.empty(1, dtype=object)
    array[0] = Evil()
    path = tmp_path / "x_map_to_names.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
        pickle.dump(array, fh, protocol=4)
    with pytest.raises(BenchError, match="refers to builtins.print"):
        read_name_array(path)


# --- memes: the mislabelled post and the clean subset ----------------------------------------

def _memes_input(tmp_path):
    posts = [("EQKrGAq_imgr", "Scumbag Steve"),  # first post of its wrong template
             ("s1", "Scumbag Steve"), ("b1", "Bad Luck Brian"), ("b2", "Bad Luck Brian"),
             ("h1", "harold"), ("h2", "harold"), ("z1", "Zuckerberg"), ("d1", "drake")]
    images = tmp_path / "kaggle" / "images"
    images.mkdir(parents=True)
    for i, (stem, _) in enumerate(posts):
        Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(images / f"{stem}.png")
    csv = tmp_path / "kaggle" / "reddit_posts.csv"
    csv.write_text("id,template\n" + "".join(f"{s},{t}\n" for s, t in posts))
    return csv, images


def test_memes_mislabelled_post_is_a_bad_luck_brian_meme(tmp_path):
    from bench.datasets.prepare.memes import prepare_memes

    csv, images = _memes_input(tmp_path)
    report = prepare_memes(csv, images, tmp_path / "out")
    out = tmp_path / "out"
    templates = sorted(p.name for p in (out / "templates").iterdir())
    memes = sorted(p.name for p in (out / "memes").iterdir())
    assert "Bad-Luck-Brian_EQKrGAq-imgr.png" in memes
    # the template its wrong label made from it is gone: s1 is Scumbag Steve's template now
    assert (out / "templates" / "Scumbag-Steve.png").read_bytes() == (
        images / "s1.png").read_bytes()
    assert not any("EQKrGAq" in m for m in memes if not m.startswith("Bad-Luck-Brian_"))
    assert report.relabelled == ["EQKrGAq_imgr: Scumbag-Steve -> Bad-Luck-Brian"]
    assert "harold.png" in templates and report.dropped == []
    unfixed = prepare_memes(csv, images, tmp_path / "raw", fix_labels=False)
    wrong = tmp_path / "raw" / "templates" / "Scumbag-Steve.png"
    assert unfixed.relabelled == []
    assert wrong.read_bytes() == (images / "EQKrGAq_imgr.png").read_bytes()


def test_memes_clean_subset_drops_the_templates_that_are_not_copies(tmp_path):
    from click.testing import CliRunner

    from bench.cli.main import cli

    csv, images = _memes_input(tmp_path)
    out = tmp_path / "clean"
    result = CliRunner().invoke(cli, ["datasets", "prepare", "memes", str(csv), str(images),
                                      str(out), "--clean"])
    assert result.exit_code == 0, result.output
    assert "dropped 2 templates (harold, Zuckerberg)" in result.output
    names = [p.name for p in (out / "templates").iterdir()] + [
        p.name for p in (out / "memes").iterdir()]
    assert not any(n.lower().startswith(("harold", "zuckerberg")) for n in names)
    assert "drake.png" in names and "Bad-Luck-Brian_EQKrGAq-imgr.png" in names
    assert "0 images not in the CSV" in result.output
