"""Which of the sizes Telegram keeps of a photo the worker should download.

Telegram stores a photo in several sizes whose longest side is 90, 320, 800, 1280 and
2560 px (as far as the original allows). The face pipeline (docs/face_pipeline.md)
looks for faces of at least `max(min_face_px, min_face_fraction × longest side)`:
40 px or 1/16 of the side. Above `min_face_px / min_face_fraction` = 640 px the 1/16
rule decides, so a larger copy of the same photo finds no smaller face, relative to the
photo, than a 640 px one: it only costs more to download, decode and scan. Below 640 px
the 40 px floor loses faces (at 320 px only faces over 1/8 of the side are found).

So the choice is the smallest size whose longest side reaches that threshold (the
800 px size for ordinary photos), else the largest there is.
"""

from __future__ import annotations

from collections.abc import Sequence

from telegram import PhotoSize

from shared.config import Settings


def detection_side(settings: Settings) -> int:
    """The longest side above which a larger copy finds no relatively smaller face."""
    detection = settings.detection
    return round(detection.min_face_px / detection.min_face_fraction)


def choose_photo_size(sizes: Sequence[PhotoSize], min_side: int) -> PhotoSize:
    """The smallest size whose longest side is at least `min_side`, else the largest."""
    if not sizes:
        raise ValueError("a photo without sizes")
    by_side = sorted(sizes, key=lambda s: (max(s.width, s.height), s.file_size or 0))
    for size in by_side:
        if max(size.width, size.height) >= min_side:
            return size
    return by_side[-1]
