"""What the bot writes back: the caption listing look-alikes, and the answers to problems.

Pure functions of a `PhotoMatches` and the user's language. Faces are numbered as in
the reply picture (`shared.render`): in order, only faces with matches, when there are
several. Telegram limits captions to 1024 characters and messages to 4096, so faces
that do not fit are summed up as "and K more".
"""

from __future__ import annotations

from shared.matching import FaceMatches, PhotoMatches
from shared.texts import text

CAPTION_LIMIT = 1024  # Telegram's limit for photo captions
MESSAGE_LIMIT = 4096  # and for text messages
MAX_NAME = 64  # a longer name is cut, so one face can never fill the caption

# Problems with their own answer (text keys): `shared.images.ImageError.code` values and
# download problems; anything else is answered as an unreadable image.
PROBLEMS = frozenset({"no_face", "no_match", "unreadable_image", "image_too_large",
                      "file_too_large", "download_failed"})


def problem_text(code: str, language_code: str | None) -> str:
    """The answer to a photo that could not be matched, in the user's language."""
    return text(code if code in PROBLEMS else "unreadable_image", language_code)


def answered_faces(result: PhotoMatches) -> list[FaceMatches]:
    """The faces a reply talks about, in the order the picture shows them."""
    return [item for item in result.faces if item.matches]


def _name(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "…"


def _face_lines(item: FaceMatches) -> list[str]:
    return [f"{rank}. {_name(m.celebrity.name)} — {m.similarity:.0%}"
            for rank, m in enumerate(item.matches, start=1)]


def matches_text(result: PhotoMatches, language_code: str | None,
                 limit: int = CAPTION_LIMIT, max_faces: int | None = None) -> str:
    """Per face, its closest celebrities with similarity; at most `limit` characters.

    Raises ValueError when no face has a match (answer with `problem_text` instead).
    """
    faces = answered_faces(result)
    if not faces:
        raise ValueError("no face with a match")
    if len(result.faces) == 1:
        lines = [text("result_title", language_code), *_face_lines(faces[0])]
        return "\n".join(lines)[:limit]
    shown = faces if max_faces is None else faces[:max_faces]
    blocks = ["\n".join([text("result_face", language_code, number=number),
                         *_face_lines(item)])
              for number, item in enumerate(shown, start=1)]
    while True:
        hidden = len(faces) - len(blocks)
        parts = blocks + ([text("result_more_faces", language_code, count=hidden)]
                          if hidden else [])
        caption = "\n\n".join(parts)
        if len(caption) <= limit or len(blocks) <= 1:
            return caption[:limit]
        blocks.pop()
