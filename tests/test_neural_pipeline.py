"""Preprocessing, the DataLoader pipeline, the feature store around it, and a whole
experiment with a SimCLR v2 extractor, all on random weights and skimage photos."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

torch = pytest.importorskip("torch")

from bench.core.errors import BenchError  # noqa: E402
from bench.core.items import Item  # noqa: E402
from bench.extractors import registry  # noqa: E402
from bench.extractors.neural import preprocess as pp  # noqa: E402
from bench.extractors.neural.models import MODELS  # noqa: E402
from bench.features import store  # noqa: E402

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "logo"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def small_inputs(monkeypatch):
    """64x64 crops instead of 224 for the tests that are about plumbing, not geometry."""
    monkeypatch.setitem(pp.PRESETS, "imagenet", pp.Preprocess(
        "imagenet", 72, False, 64, "bilinear", pp.IMAGENET_MEAN, pp.IMAGENET_STD))
    monkeypatch.setitem(pp.PRESETS, "simclr", pp.Preprocess("simclr", 72, True, 64, "lanczos"))


def _photo_files(folder: Path) -> list[Path]:
    """JPEGs (colour and grey) and an RGBA PNG, of different sizes and orientations."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in PHOTOS:
        array = getattr(data, name)()
        path = folder / (f"{name}.png" if array.ndim == 3 and array.shape[2] == 4
                         else f"{name}.jpg")
        Image.fromarray(array).save(path)
        out.append(path)
    return out


def _broken_files(folder: Path, good: Path) -> list[Path]:
    (folder / "text.jpg").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    blob = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(blob[: len(blob) // 2])
    return [folder / "text.jpg", folder / "empty.jpg", folder / "truncated.jpg",
            folder / "missing.jpg"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for name in ("resnet50", "simclr-v2-r50-1x-sk1"):
        torch.manual_seed(0)
        out[name] = folder / f"{name}.pt"
        torch.save(MODELS[name].build().state_dict(), out[name])
    return out


def _extractor(name: str, weights: Path, **options):
    cls = registry.get(name)
    return cls(cls.Options.model_validate({"weights": str(weights), **options}))


def _collect(ext, items, workers):
    batches = []
    assert ext.run_pipeline(items, lambda *b: batches.append(b), workers=workers) is True
    return batches


# --- preprocessing -------------------------------------------------------------------------

def test_simclr_preprocessing_resizes_the_shorter_side_and_centre_crops():
    image = Image.fromarray(data.chelsea())  # 451 x 300 (w x h)
    simclr = pp.PRESETS["simclr"]
    assert simclr.resized_size(451, 300) == (384, 256)  # int(256 * 451 / 300) = 384
    assert simclr.resized_size(300, 451) == (256, 384)
    want = image.resize((384, 256), Image.Resampling.LANCZOS).crop((80, 16, 304, 240))
    got = simclr.to_array(image)
    assert got.shape == (224, 224, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.asarray(want))
    x = simclr.to_model_input(torch.from_numpy(got[None].copy()))
    assert x.shape == (1, 3, 224, 224) and x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), got / 255.0, rtol=1e-6)


def test_imagenet_preprocessing_squashes_to_256_and_normalises():
    image = Image.fromarray(data.rocket())  # 640 x 427
    resnet = pp.PRESETS["imagenet"]
    # Lanczos, as the original study resized (torchvision's default would be bilinear)
    want = image.resize((256, 256), Image.Resampling.LANCZOS).crop((16, 16, 240, 240))
    got = resnet.to_array(image)
    np.testing.assert_array_equal(got, np.asarray(want))
    x = resnet.to_model_input(torch.from_numpy(got[None].copy())).numpy()[0]
    mean, std = np.array(pp.IMAGENET_MEAN), np.array(pp.IMAGENET_STD)
    expected = (got / 255.0 - mean) / std
    np.testing.assert_allclose(x.transpose(1, 2, 0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_image_mode_becomes_three_channels(mode):
    image = Image.fromarray(data.astronaut()).convert(mode)
    assert pp.PRESETS["simclr"].to_array(image).shape == (224, 224, 3)


# --- the pipeline --------------------------------------------------------------------------

def test_pipeline_reports_every_item_once_and_skips_unreadable_files(
        tmp_path, weights, small_inputs):
    photos = _photo_files(tmp_path / "img")
    broken = _broken_files(tmp_path / "img", photos[0])
    paths = [photos[0], broken[0], *photos[1:3], broken[1], broken[2], *photos[3:], broken[3]]
    items = [Item(id=f"i{k}", path=p) for k, p in enumerate(paths)] + [Item(id="t", text="x")]
    ext = _extractor("resnet50", weights["resnet50"], batch_size=4)
    batches = _collect(ext, items, workers=2)
    assert len(batches) == 3  # 11 items in batches of 4
    kept = np.concatenate([b[0] for b in batches])
    skipped = [s for b in batches for s in b[2]]
    assert sorted(kept.tolist() + [p for p, _ in skipped]) == list(range(len(items)))
    assert kept.tolist() == [k for k, p in enumerate(paths) if p in photos]  # in order
    reasons = dict(skipped)
    assert set(reasons) == {1, 4, 5, 9, 10}
    assert "UnidentifiedImageError" in reasons[1] and "text.jpg" in reasons[1]
    assert "truncated" in reasons[5].lower()
    assert "No such file" in reasons[9] and reasons[10] == "item has no image path"
    feats = np.concatenate([b[1] for b in batches])
    assert feats.shape == (len(photos), 2048) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    # the same numbers without worker processes, and through the plain extract() path
    again = np.concatenate([b[1] for b in _collect(ext, items, workers=0)])
    np.testing.assert_array_equal(again, feats)
    pil = [Image.open(p).convert("RGB") for p in photos]
    np.testing.assert_allclose(ext.extract(pil), feats, rtol=1e-4, atol=1e-4)
    assert len({f.tobytes() for f in feats}) == len(photos)


def test_bfloat16_and_channels_last_keep_features_close(tmp_path, weights, small_inputs):
    photos = _photo_files(tmp_path / "img")
    items = [Item(id=str(k), path=p) for k, p in enumerate(photos)]
    name, path = "simclr-v2-r50-1x-sk1", weights["simclr-v2-r50-1x-sk1"]

    def feats(**options):
        batches = _collect(_extractor(name, path, **options), items, workers=0)
        return np.concatenate([b[1] for b in batches])

    base = feats()
    np.testing.assert_allclose(feats(channels_last=False), base, rtol=1e-3, atol=1e-4)
    low = feats(bfloat16=True)
    cos = (low * base).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(base, axis=1)
    assert cos.min() > 0.98 and not np.array_equal(low, base)
    # nearest neighbours are unchanged: each bf16 feature is closest to its own fp32 one
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    assert (np.argmax(low @ unit.T, axis=1) == np.arange(len(photos))).all()


def test_fingerprint_holds_the_weights_hash_and_preprocessing_not_the_runtime(
        tmp_path, weights):
    path = weights["resnet50"]
    fp = _extractor("resnet50", path).fingerprint()
    assert fp["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fp["preprocess"]["resize"] == 256 and fp["preprocess"]["mean"] == pp.IMAGENET_MEAN
    runtime = _extractor("resnet50", path, batch_size=7, device="cpu", workers=0,
                         channels_last=False).fingerprint()
    assert runtime == fp
    assert _extractor("resnet50", path, bfloat16=True).fingerprint() != fp
    copy = tmp_path / "copy.pt"
    state = torch.load(path, weights_only=True)
    state["fc.bias"] += 1
    torch.save(state, copy)
    assert _extractor("resnet50", copy).fingerprint()["weights_sha256"] != fp["weights_sha256"]


def test_device_option_is_checked(weights):
    from bench.extractors.neural.pipeline import choose_device

    assert choose_device("auto", "x").type in {"cpu", "cuda", "mps"}
    assert choose_device("cpu", "x").type == "cpu"
    with pytest.raises(BenchError, match="device: 'gpu' is not a torch device"):
        choose_device("gpu", "extractor resnet50")
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="device: cuda requested"):
            _extractor("resnet50", weights["resnet50"], device="cuda").run_pipeline(
                [Item(id="a", path=Path("a.jpg"))], lambda *a: None, workers=0)


# --- through the feature store -------------------------------------------------------------

def test_interrupted_extraction_resumes_where_it_stopped(tmp_path, weights, small_inputs,
                                                         monkeypatch):
    monkeypatch.setattr(store, "CHUNK", 4)  # resumable chunks of 4 items
    photos = _photo_files(tmp_path / "img")
    broken = _broken_files(tmp_path / "img", photos[0])
    paths = photos[:3] + broken[:1] + photos[3:] + broken[1:2]
    items = [Item(id=f"img:{p.stem}", path=p) for p in paths]
    name, path = "simclr-v2-r50-1x-sk1", weights["simclr-v2-r50-1x-sk1"]
    seen: list[int] = []

    class Interrupted(Exception):
        pass

    def interrupting(after_batches: int | None):
        ext = _extractor(name, path, batch_size=2)
        inner = ext.run_pipeline

        def run_pipeline(todo, on_batch, *, workers):
            seen.append(len(todo))
            calls = 0

            def limited(*batch):
                nonlocal calls
                calls += 1
                if after_batches is not None and calls > after_batches:
                    raise Interrupted
                on_batch(*batch)

            return inner(todo, limited, workers=workers)

        ext.run_pipeline = run_pipeline
        return ext

    cache = tmp_path / "cache"
    with pytest.raises(Interrupted):
        store.extract_features(interrupting(3), items, cache_dir=cache, dataset_fingerprint="d",
                               workers=2, progress=False)
    resumed = store.extract_features(interrupting(None), items, cache_dir=cache,
                                     dataset_fingerprint="d", workers=2, progress=False)
    assert seen == [8, 4]  # 3 batches of 2 = 6 items, 4 of them flushed as one chunk
    fresh = store.extract_features(_extractor(name, path, batch_size=3), items,
                                   cache_dir=tmp_path / "other", dataset_fingerprint="d",
                                   workers=0, progress=False)
    np.testing.assert_allclose(np.asarray(resumed.features), np.asarray(fresh.features),
                               rtol=1e-5, atol=1e-6)
    assert resumed.kept.tolist() == [0, 1, 2, 4, 5, 6] == fresh.kept.tolist()
    assert [i for i, _ in resumed.skipped] == ["img:text", "img:empty"]
    assert resumed.features.shape == (6, 2048)
    reused = store.extract_features(interrupting(0), items, cache_dir=cache,
                                    dataset_fingerprint="d", workers=2, progress=False)
    assert seen == [8, 4] and reused.path == resumed.path  # cached: no extraction at all


def test_experiment_with_simclr_v2_r50_2x_sk1_runs_end_to_end(tmp_path, write_experiment):
    """The issue's acceptance test: a YAML experiment, a folder of images, a local
    weights file (random here) for simclr-v2-r50-2x-sk1, real 224x224 preprocessing."""
    from bench.run.runner import RunOptions, run_experiment

    folder, queries = tmp_path / "images", tmp_path / "queries"
    photos = _photo_files(folder)
    for extra in photos[3:]:
        extra.unlink()
    _broken_files(folder, photos[0])  # text.jpg, empty.jpg, truncated.jpg: skipped
    queries.mkdir()
    Image.open(photos[1]).save(queries / "coffee_q.jpg", quality=60)  # a re-encoded copy
    torch.manual_seed(0)
    weights = tmp_path / "r50_2x_sk1.pt"
    torch.save(MODELS["simclr-v2-r50-2x-sk1"].build().state_dict(), weights)
    spec = {
        "name": "simclr-e2e", "seed": 1,
        "dataset": {"name": "image-folder", "path": str(folder), "queries": str(queries)},
        "extractor": {"name": "simclr-v2-r50-2x-sk1", "weights": str(weights),
                      "batch_size": 4, "device": "auto", "workers": 2},
        "metric": "angular", "k": 1, "runs": 1,
        "algorithms": [{"algorithm": "faiss", "name": "flat", "build": {"factory": "Flat"}}],
    }
    results = run_experiment(write_experiment(spec),
                             RunOptions(progress=False, executor="inline"))
    data = json.loads(results.path.read_text())
    (run,) = data["runs"]
    assert run["status"] == "ok", run.get("error")
    assert run["recall"] == 1.0
    described = json.dumps(data["dataset"])
    assert "simclr-v2-r50-2x-sk1" in described and "text.jpg" in described


def test_extractor_pickles_without_its_model(weights):
    import pickle

    ext = _extractor("resnet50", weights["resnet50"])
    ext.model(ext.settings(0))
    clone = pickle.loads(pickle.dumps(ext))
    assert type(clone) is type(ext) and clone._model is None
    assert clone.fingerprint() == ext.fingerprint()
