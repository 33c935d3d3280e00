"""The ``augly`` attack family: DISC21-style edits through Meta's AugLy (``pip install augly``).

DISC21 queries were made with AugLy: screenshots, emoji and text overlays, padding,
pixelisation, opacity, greyscale, flips, aspect changes, and chains of several. These
attacks call AugLy's image functions with every parameter drawn from the attack's own
seeded generator (``attacks.attack_rng``: seed, file name, attack name), so outputs are
byte-identical across runs and independent of workers; Python's ``random`` is reseeded
from the same generator before each call in case AugLy draws from it.

Install the plain ``augly`` package (the ``[augly]`` extra): ``augly[image]`` pins
Pillow < 9. With Pillow >= 10, AugLy 1.0's ``meme_format`` (FreeTypeFont.getsize_multiline)
and ``perspective_transform`` (numpy ``np.float``) fail, so those two are not offered.
"""

from __future__ import annotations

import importlib.util
import pickle
import random
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.core.errors import BenchError, MissingDependencyError

Step = Callable[[Any, Image.Image, np.random.Generator], Image.Image]
#: Latin fonts shipped with AugLy (with their character tables)
FONTS = ("Allura-Regular", "CaviarDreams", "AlexBrush-Regular")
N_CHAINS = 5


def _imaugs() -> Any:
    try:
        import augly.image as imaugs
    except ImportError:
        raise MissingDependencyError("augly", "augly", "the augly attack family") from None
    return imaugs


@lru_cache(maxsize=1)
def _assets() -> dict[str, Any]:
    import augly.utils as u

    emoji = sorted(p for p in Path(u.EMOJI_DIR).rglob("*.png"))
    fonts = []
    for name in FONTS:
        ttf = Path(u.FONTS_DIR) / f"{name}.ttf"
        with (Path(u.FONTS_DIR) / f"{name}.pkl").open("rb") as fh:
            fonts.append((str(ttf), len(pickle.load(fh))))
    templates = [str(Path(u.SCREENSHOT_TEMPLATES_DIR) / n) for n in ("web.png", "mobile.png")]
    return {"emoji": [str(p) for p in emoji], "fonts": fonts, "templates": templates}


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _screenshot(ia: Any, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    templates = _assets()["templates"]
    return ia.overlay_onto_screenshot(img, template_filepath=templates[rng.integers(0, 2)],
                                      crop_src_to_fit=bool(rng.integers(0, 2)))


def _text(ia: Any, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    font, n_chars = _assets()["fonts"][int(rng.integers(0, len(FONTS)))]
    text = [int(i) for i in rng.integers(0, n_chars, int(rng.integers(4, 12)))]
    return ia.overlay_text(img, text=text, font_file=font, font_size=float(rng.uniform(.1, .3)),
                           opacity=float(rng.uniform(.5, 1)), color=_colour(rng),
                           x_pos=float(rng.uniform(0, .5)), y_pos=float(rng.uniform(0, .8)))


def _emoji(ia: Any, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    emoji = _assets()["emoji"]
    return ia.overlay_emoji(img, emoji_path=emoji[int(rng.integers(0, len(emoji)))],
                            opacity=float(rng.uniform(.5, 1)),
                            emoji_size=float(rng.uniform(.1, .4)),
                            x_pos=float(rng.uniform(0, .7)), y_pos=float(rng.uniform(0, .7)))


STEPS: dict[str, Step] = {
    "screenshot": _screenshot,
    "overlay_text": _text,
    "overlay_emoji": _emoji,
    "pad": lambda ia, img, rng: ia.pad(img, w_factor=float(rng.uniform(.05, .4)),
                                       h_factor=float(rng.uniform(.05, .4)), color=_colour(rng)),
    "pixelization": lambda ia, img, rng: ia.pixelization(img, ratio=float(rng.uniform(.2, .6))),
    "opacity": lambda ia, img, rng: ia.opacity(img, level=float(rng.uniform(.3, .8))),
    "grayscale": lambda ia, img, rng: ia.grayscale(img),
    "hflip": lambda ia, img, rng: ia.hflip(img),
    "vflip": lambda ia, img, rng: ia.vflip(img),
    "aspect": lambda ia, img, rng: ia.change_aspect_ratio(img,
                                                          ratio=float(rng.uniform(.5, 2.0))),
}
AUGLY_NAMES: tuple[str, ...] = (*(f"augly_{s}" for s in STEPS),
                                *(f"augly_chain_{i}" for i in range(1, N_CHAINS + 1)))


def _flatten(img: Image.Image) -> Image.Image:
    """RGB on white (opacity and emoji give RGBA)."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def _step(ia: Any, name: str, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    random.seed(int(rng.integers(0, 2**32)))
    return STEPS[name](ia, img, rng)


def augly_fn(name: str) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """The attack function of ``augly_<step>`` or ``augly_chain_<i>`` (2-4 random steps)."""
    if name not in AUGLY_NAMES:
        raise BenchError(f"unknown attack {name!r}; augly attacks: {', '.join(AUGLY_NAMES)}")
    if importlib.util.find_spec("augly") is None:
        raise MissingDependencyError("augly", "augly", f"attack {name}")
    step = name.removeprefix("augly_")

    def attack(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        ia = _imaugs()
        if not step.startswith("chain_"):
            return _flatten(_step(ia, step, img, rng))
        names = list(STEPS)
        chosen = rng.choice(len(names), size=int(rng.integers(2, 5)), replace=False)
        out = img
        for i in chosen:
            out = _step(ia, names[int(i)], out, rng)
        return _flatten(out)

    return attack
