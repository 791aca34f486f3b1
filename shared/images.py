"""Decoding untrusted image bytes into RGB arrays.

Every failure is a typed `ImageError` with a stable `code`, so callers can answer
users ("unreadable image", "image too large") instead of crashing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.detection import DEFAULT_DETECTION
from shared.instance import Lazy


def _register_heif() -> bool:
    import pillow_heif

    # Thumbnails are not wanted: the primary image is what the user photographed.
    pillow_heif.register_heif_opener(thumbnails=False)
    return True


# Phones send HEIC/HEIF files (iPhones by default); Pillow reads AVIF itself and HEIF
# through pillow-heif's opener, registered once per process when Pillow first meets a file
# it cannot identify: Telegram's photos are JPEG, and loading libheif would cost every new
# instance time and memory that most never need.
heif_opener = Lazy(_register_heif)


class ImageError(Exception):
    """An image that cannot be used; `code` is stable and safe to show to users."""

    code = "unreadable_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnreadableImage(ImageError):
    code = "unreadable_image"


class ImageTooLarge(ImageError):
    code = "image_too_large"


def decode_image(data: bytes,
                 max_pixels: int = DEFAULT_DETECTION.max_image_pixels) -> np.ndarray:
    """Decode image bytes into an upright RGB uint8 array of shape (height, width, 3).

    Reads every format Pillow reads, plus HEIC/HEIF (pillow-heif) and AVIF.
    Applies the EXIF orientation, takes the first frame of animations, flattens
    transparency on white and maps 16-bit, palette, grayscale and CMYK images to RGB.
    Raises `UnreadableImage` for empty, non-image or truncated data and
    `ImageTooLarge` when width × height exceeds `max_pixels` (checked from the
    header, before any pixel is decoded). Pillow's own bomb check stays on as a backstop.
    """
    if not data:
        raise UnreadableImage("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(data)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{width}x{height} is {width * height / 1e6:.1f} MP, over the "
                    f"{max_pixels / 1e6:.0f} MP limit"
                )
            if width < 1 or height < 1:
                raise UnreadableImage("the image has no pixels")
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(str(exc)) from None
    except UnidentifiedImageError:
        raise UnreadableImage("the file is not an image in a known format") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # Pillow reports truncated or corrupt data through these.
        raise UnreadableImage(f"the image data is damaged ({exc})") from None
    except MemoryError:
        raise ImageTooLarge("the image needs too much memory to decode") from None


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if heif_opener.made:
            raise
    heif_opener()
    return Image.open(io.BytesIO(data))


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        # Many 16-bit files only use 0..255 (converted from 8-bit); scaling those by 65535
        # would turn them black.
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.mode == "RGBA":
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def encode_jpeg(image: np.ndarray | Image.Image, quality: int = 85) -> bytes:
    """Encode an RGB array or Pillow image as JPEG bytes: the bot's reply pictures and the
    index's face crops. Without Pillow's `optimize`, whose few percent fewer bytes cost
    several times the encoding time (docs/performance.md, "JPEG encoding")."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
