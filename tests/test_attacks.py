"""The 58 attacks: the table, what each attack does, and byte-identical `bench attacks` output."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from bench.core.errors import BenchError
from bench.datasets.prepare.attacks import (
    ATTACK_NAMES,
    ATTACKS,
    FAMILIES,
    attack_image,
    attack_rng,
    family_of,
    write_attacks,
)


def _photo(name: str, size: tuple[int, int] = (96, 72)) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB").resize(size)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    _photo("astronaut").save(folder / "100075.png")
    _photo("chelsea").save(folder / "12.jpg", quality=95)
    return folder


def test_table_has_the_58_attacks_in_their_families():
    assert len(ATTACKS) == 58 and len(set(ATTACK_NAMES)) == 58
    counts = Counter(a.family for a in ATTACKS)
    assert counts == {"noise": 9, "filter": 6, "compression": 3, "scaling": 4, "crop": 5,
                      "rotation": 5, "shear": 5, "enhancement": 16, "text": 5}
    assert set(counts) == set(FAMILIES)
    for name in ("gaussian_noise_0.01", "salt_pepper_0.15", "speckle_noise_0.05",
                 "gaussian_blur_7", "median_filter_3", "jpeg_50", "scale_1.6", "crop_20",
                 "rotate_40", "shear_1", "contrast_0.66", "color_2", "brightness_1.5",
                 "sharpness_0.5", "text_30"):
        assert name in ATTACK_NAMES
    assert family_of("jpeg_10") == "compression" and family_of("rotate_60") == "rotation"
    assert family_of("my_own_edit") == "other"


def test_every_attack_changes_the_image_and_keeps_a_sane_size():
    img = _photo("coffee")
    original = np.asarray(img, dtype=np.int16)
    for attack in ATTACKS:
        out = attack_image(img, attack, attack_rng(0, "coffee.png", attack.name))
        assert out.mode == "RGB", attack.name
        if attack.family == "scaling":
            factor = float(attack.name.split("_")[1])
            assert out.size == (round(96 * factor), round(72 * factor)), attack.name
            continue
        assert out.size == img.size, attack.name
        diff = np.abs(np.asarray(out, dtype=np.int16) - original)
        assert diff.max() > 0, f"{attack.name} left the image unchanged"


def test_blur_strength_and_crop_grow_with_the_parameter():
    img = _photo("astronaut")
    base = np.asarray(img, dtype=float)

    def change(name: str) -> float:
        out = attack_image(img, name, attack_rng(0, "a", name))
        return float(np.abs(np.asarray(out, dtype=float) - base).mean())

    assert change("gaussian_blur_3") < change("gaussian_blur_5") < change("gaussian_blur_7")
    assert change("crop_5") < change("crop_20") < change("crop_60")
    assert change("gaussian_noise_0.01") < change("gaussian_noise_0.05")


def test_random_attacks_depend_on_the_seed_only():
    img = _photo("astronaut")
    for name in ("gaussian_noise_0.02", "salt_pepper_0.1", "text_20"):
        a = np.asarray(attack_image(img, name, attack_rng(1, "x.png", name)))
        b = np.asarray(attack_image(img, name, attack_rng(1, "x.png", name)))
        c = np.asarray(attack_image(img, name, attack_rng(2, "x.png", name)))
        assert np.array_equal(a, b) and not np.array_equal(a, c), name


def test_text_fits_even_a_tiny_image():
    tiny = _photo("astronaut", (24, 16))
    out = attack_image(tiny, "text_50", attack_rng(0, "t", "text_50"))
    assert out.size == (24, 16)
    assert not np.array_equal(np.asarray(out), np.asarray(tiny))


def test_write_attacks_gives_58_byte_identical_files_per_image(src: Path, tmp_path: Path):
    first = write_attacks(src, tmp_path / "a", seed=3, workers=1, progress=False)
    second = write_attacks(src, tmp_path / "b", seed=3, workers=2, progress=False)
    assert first.images == 2 and first.written == 116 and not first.skipped
    assert second.written == 116
    names_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    names_b = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names_a == names_b and len(names_a) == 116
    expected = sorted(f"{stem}_{a}.png" for stem in ("100075", "12") for a in ATTACK_NAMES)
    assert names_a == expected
    for name in names_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other_seed = write_attacks(src, tmp_path / "c", seed=4, workers=1, progress=False,
                               attacks=("gaussian_noise_0.01",))
    assert other_seed.written == 2
    assert ((tmp_path / "c" / "12_gaussian_noise_0.01.png").read_bytes()
            != (tmp_path / "a" / "12_gaussian_noise_0.01.png").read_bytes())


def test_unreadable_sources_are_skipped_and_reported(src: Path, tmp_path: Path):
    (src / "broken.jpg").write_bytes(b"")
    report = write_attacks(src, tmp_path / "out", seed=0, progress=False, attacks=("jpeg_50",))
    assert report.images == 3 and report.written == 2
    assert [Path(f).name for f, _ in report.skipped] == ["broken.jpg"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "100075_jpeg_50.png", "12_jpeg_50.png"]


def test_bad_inputs_are_clear_errors(src: Path, tmp_path: Path):
    with pytest.raises(BenchError, match="does not exist"):
        write_attacks(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="no images"):
        write_attacks(tmp_path / "empty", tmp_path / "out", progress=False)
    (src / "sub").mkdir()
    _photo("coffee").save(src / "sub" / "12.png")
    with pytest.raises(BenchError, match="same stem"):
        write_attacks(src, tmp_path / "out", progress=False)
    with pytest.raises(BenchError, match="unknown attack"):
        attack_image(_photo("coffee"), "blur_99", np.random.default_rng(0))
