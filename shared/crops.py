"""A face's square picture: the user's face in the bot's reply picture, and each
celebrity's photo that the index builder keeps for it (shown in the reply's other half).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from shared.faces import Box

TILE = 320  # side of a face picture, in pixels: the reply's tiles and the index's crops


def face_crop(image: np.ndarray, box: Box, size: int = TILE, margin: float = 0.6,
              resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """A square crop around a face, with `margin` of the face size added on each side."""
    left, top, right, bottom = box
    side = max(right - left, bottom - top) * (1 + 2 * margin)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    crop = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    picture = Image.fromarray(image).crop(crop)
    return picture.resize((size, size), resample)
