"""What the face pipeline accepts and looks for, with its defaults: the one place they
are declared.

The bot reads these settings from `LOOKALIKE_*` variables as part of `Settings`
(shared/config.py); the index builder uses `BUILDER_DETECTION`. Plain values only, no
face code: the webhook reads the settings too and must stay light. How the sizes set the
detector's scale is explained in shared/faces.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# `coarse_face_fraction` at OFF runs the fine pass alone. A number rather than None, so
# that the same value reads from an environment variable and compares as it is written.
OFF = 0.0


@dataclass(frozen=True)
class DetectionSettings:
    # Images with more pixels than this are refused before decoding (decompression bombs).
    max_image_pixels: int = 40_000_000
    # Faces smaller than both limits may be missed.
    min_face_px: int = 40
    min_face_fraction: float = 1 / 16
    # Images with a longer side than `large_image_side` are files, not the photo sizes the
    # bot downloads (800 px; Telegram's largest classic size is 1280 px): a user sends a
    # file to keep detail, as in group shots, so faces down to `large_face_fraction` of
    # the side are looked for instead (but not below `min_face_px`); OFF keeps the
    # photos' fraction for every size.
    large_image_side: int = 1280
    large_face_fraction: float = 1 / 48
    # A first, cheaper pass looks for faces of at least this share of the longest side;
    # OFF runs the fine pass alone.
    coarse_face_fraction: float = 1 / 8
    # dlib detector score threshold (0 is dlib's default).
    detect_threshold: float = 0.0

    @property
    def coarse(self) -> bool:
        """Whether a coarse pass runs first."""
        return self.coarse_face_fraction != OFF

    def smallest_face(self, side: int, *, coarse: bool = False) -> float:
        """The smallest face (px) looked for in a photo whose longest side is `side`, by
        the fine pass or, with `coarse`, by the coarse one."""
        if coarse:
            fraction = self.coarse_face_fraction
        elif side > self.large_image_side and self.large_face_fraction != OFF:
            fraction = self.large_face_fraction
        else:
            fraction = self.min_face_fraction
        return max(float(self.min_face_px), fraction * side)

    def fine_only(self) -> DetectionSettings:
        return replace(self, coarse_face_fraction=OFF)

    def photo_rule_only(self) -> DetectionSettings:
        """These settings with `min_face_fraction` for large images too."""
        return replace(self, large_face_fraction=OFF)


DEFAULT_DETECTION = DetectionSettings()
# The index builder wants every face of a photo, so its quality filter sees crowds; but
# only faces of at least half the largest one count there (QualityFilter.dominance), and
# gallery photos show their person large, so the photos' fraction serves large images too
# at a fraction of the cost.
BUILDER_DETECTION = DEFAULT_DETECTION.fine_only().photo_rule_only()
