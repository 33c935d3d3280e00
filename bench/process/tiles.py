"""Drawing gallery tiles with Pillow: thumbnail, coloured frame, caption.

Pillow rather than matplotlib: a gallery is a grid of pictures with a few words
each, and composing it directly is about ten times faster than a figure per
gallery, with exact control of the pixel layout. Images are opened only when
their tile is drawn, and a missing or unreadable file becomes a grey tile that
says so, never an exception: one lost file must not cost the whole report.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

THUMB = 168
BORDER = 5
PAD = 8
LINE = 15
CAPTION_LINES = 3
GAP = 18

GREEN = (34, 139, 34)
RED = (214, 39, 40)
BLUE = (31, 119, 180)
DARK = (70, 70, 70)
LIGHT = (200, 200, 200)
MISSING_FILL = (150, 150, 150)
BACKGROUND = (255, 255, 255)


@lru_cache(maxsize=4)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's own font files: present wherever the plots work."""
    try:
        from matplotlib import font_manager

        name = font_manager.findfont(font_manager.FontProperties(
            family="DejaVu Sans", weight="bold" if bold else "normal"), fallback_to_default=True)
        return ImageFont.truetype(name, size)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default(size)


@dataclass
class Tile:
    """One picture of a gallery: what to show, its frame colour, up to three caption lines."""

    path: Path | None = None
    text: str | None = None
    color: tuple[int, int, int] = LIGHT
    caption: tuple[str, ...] = ()
    empty: str | None = None  # shown instead of a picture (e.g. "no result")


def _message(text: str, fill: tuple[int, int, int], ink: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (THUMB, THUMB), fill)
    draw = ImageDraw.Draw(img)
    draw.multiline_text((THUMB / 2, THUMB / 2), text, fill=ink, font=font(13), anchor="mm",
                        align="center")
    return img


@lru_cache(maxsize=256)
def thumbnail(path: Path) -> tuple[Image.Image, str | None]:
    """(THUMB x THUMB picture, warning or None); cached because originals recur."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (THUMB * 2, THUMB * 2))  # JPEG: decode at reduced size
            picture = ImageOps.contain(img.convert("RGB"), (THUMB, THUMB))
    except FileNotFoundError:
        return _message("image file\nmissing", MISSING_FILL, (255, 255, 255)), "file not found"
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        reason = f"unreadable ({type(exc).__name__})"
        return _message("image file\nunreadable", MISSING_FILL, (255, 255, 255)), reason
    canvas = Image.new("RGB", (THUMB, THUMB), (240, 240, 240))
    canvas.paste(picture, ((THUMB - picture.width) // 2, (THUMB - picture.height) // 2))
    return canvas, None


def text_picture(text: str) -> Image.Image:
    """Text items (captions, tweets) drawn as a wrapped paragraph."""
    lines = textwrap.wrap(" ".join(text.split()), width=24)[:10]
    return _message("\n".join(lines) or "(empty text)", (250, 250, 245), (20, 20, 20))


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, face: ImageFont.ImageFont) -> str:
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text + "…"


def render(tile: Tile) -> tuple[Image.Image, str | None]:
    """The framed picture with its caption below; returns a warning for a bad file."""
    warning = None
    if tile.empty is not None:
        picture = _message(tile.empty, (245, 245, 245), DARK)
    elif tile.path is not None:
        picture, warning = thumbnail(tile.path)
    elif tile.text is not None:
        picture = text_picture(tile.text)
    else:
        picture = _message("no image or text\nfor this item", MISSING_FILL, (255, 255, 255))
        warning = "item has no path or text"
    size = THUMB + 2 * BORDER
    out = Image.new("RGB", (size, size + PAD // 2 + LINE * CAPTION_LINES), BACKGROUND)
    out.paste(Image.new("RGB", (size, size), tile.color), (0, 0))
    out.paste(picture, (BORDER, BORDER))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(tile.caption[:CAPTION_LINES]):
        face = font(12, bold=i == 0)
        draw.text((1, size + PAD // 2 + i * LINE), _fit(draw, line, size - 2, face), fill=(0, 0, 0),
                  font=face)
    return out, warning


def compose(header: list[str], left: list[Tile], right: list[Tile], columns: int = 5
            ) -> tuple[Image.Image, list[str]]:
    """Query and original stacked on the left; neighbours in rank order on a grid at right."""
    warnings: list[str] = []
    left_imgs, right_imgs = [], []
    for tiles, imgs in ((left, left_imgs), (right, right_imgs)):
        for t in tiles:
            img, warning = render(t)
            imgs.append(img)
            if warning and t.path is not None:
                warnings.append(f"{t.path}: {warning}")
    tw, th = left_imgs[0].size
    cols = max(1, min(columns, len(right_imgs)))
    rows = max(len(left_imgs), -(-len(right_imgs) // cols))
    head = PAD + 20 * len(header) + PAD
    width = PAD + tw + GAP + cols * (tw + PAD) + PAD
    canvas = Image.new("RGB", (width, head + rows * (th + PAD) + PAD), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(header):
        face = font(15, bold=i == 0)
        draw.text((PAD, PAD + 20 * i), _fit(draw, line, width - 2 * PAD, face), fill=(0, 0, 0),
                  font=face)
    for i, img in enumerate(left_imgs):
        canvas.paste(img, (PAD, head + i * (th + PAD)))
    x0 = PAD + tw + GAP
    draw.line([(x0 - GAP // 2, head), (x0 - GAP // 2, canvas.height - PAD)], fill=LIGHT, width=2)
    for i, img in enumerate(right_imgs):
        r, c = divmod(i, cols)
        canvas.paste(img, (x0 + c * (tw + PAD), head + r * (th + PAD)))
    return canvas, warnings
