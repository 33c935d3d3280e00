"""Image datasets: identities, namespacing, composition, memes preparation, copydetect-mini."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.core.errors import BenchError
from bench.datasets import DatasetContext, ItemData, registry
from bench.datasets.images import natural_key, split_identity
from bench.datasets.prepare.memes import prepare_memes
from bench.datasets.samples import procedural_image


def _img(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((8, 10, 3), value, np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _load(name: str, tmp_path: Path, data_root: Path | None = None, **options) -> ItemData:
    cls = registry.get(name)
    ctx = DatasetContext(seed=1, cache_dir=tmp_path / "cache", base_dir=tmp_path,
                         data_root=data_root)
    return cls(cls.Options.model_validate(options), ctx).load()


@pytest.fixture
def bench_data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for stem in ("100075", "12"):
        _img(root / "bsds500" / "original" / f"{stem}.jpg")
    for name in ("100075_gaussian_noise_0.01", "100075_jpeg_50", "12_rotate_40",
                 "12_my_edit"):
        _img(root / "bsds500" / "attacks" / f"{name}.png")
    for folder, stem in (("1", "100"), ("0", "12"), ("0", "2"), ("10", "5000")):
        _img(root / "mirflickr" / folder / f"{stem}.jpg")
    (root / "mirflickr" / "0" / "notes.txt").write_text("not an image")
    return root


def test_identity_and_ordering_rules():
    assert split_identity("100075_gaussian_noise_0.01") == ("100075", "gaussian_noise_0.01")
    assert split_identity("drake-hotline-bling_abc-1") == ("drake-hotline-bling", "abc-1")
    assert split_identity("100075") == ("100075", None)
    names = ["10.jpg", "2.jpg", "b1.png", "1.jpg", "a10", "a9"]
    assert sorted(names, key=natural_key) == ["1.jpg", "2.jpg", "10.jpg", "a9", "a10", "b1.png"]


def test_bsds500_identities_and_attack_attributes(bench_data: Path, tmp_path: Path):
    d = _load("bsds500", tmp_path, data_root=bench_data)
    assert [it.id for it in d.database] == ["bsds:12", "bsds:100075"]
    assert [it.identity for it in d.database] == ["bsds:12", "bsds:100075"]
    by_id = {it.id: it for it in d.queries}
    q = by_id["bsds:100075_gaussian_noise_0.01"]
    assert q.identity == "bsds:100075"
    assert q.attrs == {"attack": "gaussian_noise_0.01", "family": "noise"}
    assert by_id["bsds:12_rotate_40"].attrs["family"] == "rotation"
    assert by_id["bsds:12_my_edit"].attrs == {"attack": "my_edit", "family": "other"}
    one = _load("bsds500", tmp_path, data_root=bench_data, n_originals=1)
    assert [it.id for it in one.database] == ["bsds:12"]
    assert {it.identity for it in one.queries} == {"bsds:12"}


def test_flickr_natural_order_limit_and_namespace(bench_data: Path, tmp_path: Path):
    d = _load("flickr", tmp_path, root=str(bench_data / "mirflickr"))
    assert [it.id for it in d.database] == ["flickr:2", "flickr:12", "flickr:100", "flickr:5000"]
    assert d.queries == []
    limited = _load("flickr", tmp_path, data_root=bench_data, limit=2)
    assert [it.id for it in limited.database] == ["flickr:2", "flickr:12"]


def test_copy_detection_keeps_bsds_12_and_flickr_12_apart(bench_data: Path, tmp_path: Path):
    d = _load("copy-detection", tmp_path, data_root=bench_data,
              main={"name": "bsds500"}, distractors=[{"name": "flickr"}])
    ids = [it.id for it in d.database]
    assert ids[:2] == ["bsds:12", "bsds:100075"] and "flickr:12" in ids and len(ids) == 6
    q12 = [it for it in d.queries if it.identity == "bsds:12"]
    assert q12 and all(it.identity != "flickr:12" for it in q12)
    relevant = [it.id for it in d.database if it.identity == q12[0].identity]
    assert relevant == ["bsds:12"]
    assert d.description["n_database"] == 6 and d.description["fingerprint"]


def test_colliding_namespaces_are_refused(bench_data: Path, tmp_path: Path):
    with pytest.raises(BenchError, match="namespace"):
        _load("copy-detection", tmp_path, data_root=bench_data, main={"name": "bsds500"},
              distractors=[{"name": "flickr", "namespace": "bsds"}])
    with pytest.raises(BenchError, match=r"dataset.distractors\[0\] \(flickr\): limt"):
        _load("copy-detection", tmp_path, data_root=bench_data, main={"name": "bsds500"},
              distractors=[{"name": "flickr", "limt": 3}])


def test_missing_and_empty_folders_are_clear_errors(tmp_path: Path):
    with pytest.raises(BenchError, match="BENCH_DATA"):
        _load("bsds500", tmp_path)
    with pytest.raises(BenchError, match="does not exist"):
        _load("bsds500", tmp_path, root="nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(BenchError, match="no images"):
        _load("image-folder", tmp_path, path="empty")


def test_image_folder_relative_paths_and_held_out_queries(tmp_path: Path):
    for i in range(10):
        _img(tmp_path / "pics" / f"p{i}.png", i)
    a = _load("image-folder", tmp_path, path="pics", n_queries=3)
    b = _load("image-folder", tmp_path, path="pics", n_queries=3)
    assert len(a.database) == 7 and len(a.queries) == 3
    assert [it.id for it in a.queries] == [it.id for it in b.queries]
    assert not {it.id for it in a.queries} & {it.id for it in a.database}
    assert a.database[0].id.startswith("folder:p")


def test_corrupt_and_empty_files_are_listed_not_fatal(tmp_path: Path):
    _img(tmp_path / "pics" / "good.png")
    (tmp_path / "pics" / "empty.jpg").write_bytes(b"")
    (tmp_path / "pics" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    d = _load("image-folder", tmp_path, path="pics")
    assert sorted(it.id for it in d.database) == ["folder:bad", "folder:empty", "folder:good"]


def _kaggle(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "kaggle" / "images"
    rows = ["id,template,title"]
    for i, (post, template) in enumerate([("a1", "Drake_Hotline"), ("a2", "Drake_Hotline"),
                                          ("b1", "Bad Luck Brian"), ("a3", "Drake_Hotline"),
                                          ("b_2", "Bad Luck Brian"), ("zz", "Lost")]):
        rows.append(f"{post},{template},t{i}")
        if post != "zz":
            _img(images / ("sub" if i % 2 else "") / f"{post}.jpg", i * 20)
    _img(images / "unlisted.png")
    csv = tmp_path / "kaggle" / "reddit_posts.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv, images


def test_prepare_memes_copies_deterministically_without_touching_the_input(tmp_path: Path):
    csv, images = _kaggle(tmp_path)
    before = sorted((p.relative_to(images), p.stat().st_mtime_ns) for p in images.rglob("*"))
    report = prepare_memes(csv, images, tmp_path / "out")
    assert sorted((p.relative_to(images), p.stat().st_mtime_ns)
                  for p in images.rglob("*")) == before
    assert report.templates == 2 and report.memes == 3
    assert report.missing == ["zz"] and report.unlisted == 1
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "templates").iterdir()) == [
        "Bad-Luck-Brian.jpg", "Drake-Hotline.jpg"]
    assert sorted(p.name for p in (out / "memes").iterdir()) == [
        "Bad-Luck-Brian_b-2.jpg", "Drake-Hotline_a2.jpg", "Drake-Hotline_a3.jpg"]
    assert (out / "templates" / "Drake-Hotline.jpg").read_bytes() == (
        images / "a1.jpg").read_bytes()
    again = prepare_memes(csv, images, tmp_path / "out")
    assert (again.templates, again.memes) == (2, 3)
    with pytest.raises(BenchError, match="inside the input"):
        prepare_memes(csv, images, images / "out")

    d = _load("memes", tmp_path, root="out")
    assert [it.id for it in d.database] == ["memes:Bad-Luck-Brian", "memes:Drake-Hotline"]
    assert {it.id: it.identity for it in d.queries}["memes:Drake-Hotline_a3"] == (
        "memes:Drake-Hotline")


def test_procedural_distractors_are_seeded_and_varied():
    a = np.asarray(procedural_image(7, seed=1, size=64))
    assert np.array_equal(a, np.asarray(procedural_image(7, seed=1, size=64)))
    assert not np.array_equal(a, np.asarray(procedural_image(7, seed=2, size=64)))
    others = [np.asarray(procedural_image(i, seed=1, size=64)) for i in range(8)]
    assert max(x.shape[:2] for x in others) == (64, 64)
    assert len({x.tobytes() for x in others}) == 8 and all(x.std() > 0 for x in others)


def test_copydetect_mini_generates_once_and_reuses(tmp_path: Path):
    options = dict(photos=["astronaut", "coffee"], attacks=["jpeg_50", "rotate_10"],
                   n_distractors=5, distractor_size=64, max_side=96, workers=1,
                   progress=False)
    d = _load("copydetect-mini", tmp_path, **options)
    assert [it.id for it in d.database[:2]] == ["mini:astronaut", "mini:coffee"]
    assert len(d.database) == 7 and d.database[-1].id == "mini-distractor:00004"
    assert sorted(it.id for it in d.queries) == [
        "mini:astronaut_jpeg_50", "mini:astronaut_rotate_10",
        "mini:coffee_jpeg_50", "mini:coffee_rotate_10"]
    assert {it.attrs["family"] for it in d.queries} == {"compression", "rotation"}
    assert max(Image.open(d.database[0].path).size) == 96
    mtimes = {it.path: it.path.stat().st_mtime_ns for it in d.database + d.queries}
    again = _load("copydetect-mini", tmp_path, **options)
    assert {it.path: it.path.stat().st_mtime_ns for it in again.database + again.queries} == (
        mtimes)
    assert again.description["fingerprint"] == d.description["fingerprint"]
    with pytest.raises(BenchError, match="unknown photo"):
        _load("copydetect-mini", tmp_path, photos=["lena"])
