"""The picture a user gets back: each face beside the photo of its best match.

One row per face (largest first, at most `MAX_ROWS`), numbered when there are several,
so the caption's numbered list can refer to them. Only digits and percentages are
drawn, so no font with the celebrities' scripts is needed. A best match that may be the
person themself gets no percentage, as in the caption, which says so in words.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont, ImageOps

from shared.crops import TILE, face_crop
from shared.images import encode_jpeg
from shared.index import Celebrity
from shared.matching import PhotoMatches

MAX_ROWS = 4
# Bicubic, not Lanczos, for the user's face: half the time on every reply for a picture
# that differs by a third of a grey level on average (docs/performance.md, "A lean
# reply path"). The gallery's crops keep Lanczos: they are made once, by the builder.
USER_FACE_RESAMPLING = Image.Resampling.BICUBIC
PhotoLoader = Callable[[Celebrity], bytes | None]


def _placeholder(size: int) -> Image.Image:
    return Image.new("RGB", (size, size), (200, 200, 200))


def _load_photo(loader: PhotoLoader | None, celebrity: Celebrity, size: int) -> Image.Image:
    data = loader(celebrity) if loader else None
    if not data:
        return _placeholder(size)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            picture = opened.convert("RGB")
    except OSError:
        return _placeholder(size)
    if picture.size == (size, size):  # the index builder's crops are tile-sized already
        return picture
    return ImageOps.fit(picture, (size, size), Image.Resampling.LANCZOS)


def _badge(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int) -> None:
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    pad = size // 4
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=(20, 20, 20))
    draw.text(xy, text, font=font, fill=(255, 255, 255))


def render_matches(result: PhotoMatches, photo_loader: PhotoLoader | None = None,
                   tile: int = TILE) -> Image.Image:
    """Rows of [user's face | best match's photo]; raises ValueError when there is no face."""
    rows = [item for item in result.faces if item.matches][:MAX_ROWS]
    if not rows:
        raise ValueError("nothing to draw: no face with a match")
    numbered = len(result.faces) > 1
    canvas = Image.new("RGB", (2 * tile, tile * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font_size = max(14, tile // 12)
    for i, item in enumerate(rows):
        y = i * tile
        canvas.paste(face_crop(result.scan.image, item.face.box, tile,
                               resample=USER_FACE_RESAMPLING), (0, y))
        best = item.matches[0]
        canvas.paste(_load_photo(photo_loader, best.celebrity, tile), (tile, y))
        if numbered:
            _badge(draw, (8, y + 8), str(i + 1), font_size)
        if not best.themself:
            _badge(draw, (tile + 8, y + tile - font_size - 10), f"{best.similarity:.0%}",
                   font_size)
    return canvas


def render_jpeg(result: PhotoMatches, photo_loader: PhotoLoader | None = None) -> bytes:
    return encode_jpeg(render_matches(result, photo_loader))
