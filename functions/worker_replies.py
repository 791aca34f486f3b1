"""What the bot writes back: the caption listing look-alikes, and the answers to problems.

Pure functions of a `PhotoMatches` and the user's language. Faces are numbered as in
the reply picture (`shared.render`): in order, only faces with matches, when there are
several. Look-alike texts are Telegram HTML (`PARSE_MODE`): each name in the user's
language, linked to their Wikipedia article, and below them the credit of every gallery
picture the reply shows. Telegram limits captions to 1024 characters and messages to
4096 (counted after the HTML is parsed) and a message to 100 links: faces that do not
fit are summed up as "and K more"; credits are never left out (docs/bot.md).
"""

from __future__ import annotations

import re
from html import escape, unescape

from telegram.constants import MessageLimit, ParseMode

from shared.matching import FaceMatches, PhotoMatches
from shared.people import Credit, article_url, credit, local_name
from shared.texts import text

CAPTION_LIMIT = int(MessageLimit.CAPTION_LENGTH)  # 1024, after entities parsing
MESSAGE_LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096
MAX_LINKS = int(MessageLimit.MESSAGE_ENTITIES)  # 100 formatting entities per message
PARSE_MODE = ParseMode.HTML
MAX_NAME = 64  # a longer name is cut, so one face can never fill the caption
# A credit longer than these is shortened (its source page has it in full), so that the
# credits of the four pictures a reply shows always fit in a caption with one face.
MAX_AUTHOR = 100
MAX_LICENCE = 40

# Problems with their own answer (text keys): `shared.images.ImageError.code` values and
# download problems; anything else is answered as an unreadable image.
PROBLEMS = frozenset({"no_face", "no_match", "unreadable_image", "image_too_large",
                      "file_too_large", "download_failed", "not_ready"})

_TAG = re.compile(r"<[^>]*>")  # in HTML this module made, where text is escaped


def problem_text(code: str, language_code: str | None) -> str:
    """The answer to a photo that could not be matched, in the user's language (plain
    text, no parse mode)."""
    return text(code if code in PROBLEMS else "unreadable_image", language_code)


def answered_faces(result: PhotoMatches) -> list[FaceMatches]:
    """The faces a reply talks about, in the order the picture shows them."""
    return [item for item in result.faces if item.matches]


def visible_length(html: str) -> int:
    """Length of the text Telegram shows for `html`, in UTF-16 code units as Telegram
    counts its limits (an emoji outside the BMP counts twice)."""
    return _units(unescape(_TAG.sub("", html)))


def _units(value: str) -> int:
    return len(value.encode("utf-16-le")) // 2


def _cut(value: str, limit: int) -> str:
    """`value` shortened to `limit` UTF-16 code units, as Telegram counts, with "…"."""
    if _units(value) <= limit:
        return value
    kept, used = [], 1
    for char in value:
        used += _units(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _link(label: str, url: str) -> str:
    """`label` (plain text) as HTML, linked to `url` when there is one. Escaped with
    html.escape, as python-telegram-bot's own HTML helper (`telegram.helpers.mention_html`)
    does: the library has no public escaping function for HTML."""
    if not url:
        return escape(label)
    return f'<a href="{escape(url, quote=True)}">{escape(label)}</a>'


class _Links:
    """The links a message may still carry (Telegram's entity limit)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, url: str) -> str:
        if not url or self.left <= 0:
            return ""
        self.left -= 1
        return url


def _face_lines(item: FaceMatches, language_code: str | None, links: _Links,
                first_rank: int = 1) -> list[str]:
    lines = []
    for rank, m in enumerate(item.matches, start=first_rank):
        name = _cut(local_name(m.celebrity, language_code), MAX_NAME)
        url = links.take(article_url(m.celebrity, language_code))
        if m.themself:  # "this may be NAME themself", the name linked as elsewhere
            before, _, after = text("result_themself", language_code,
                                    name="\x00").partition("\x00")
            lines.append(f"{rank}. {escape(before)}{_link(name, url)}{escape(after)}")
        else:
            lines.append(f"{rank}. {_link(name, url)} — {m.similarity:.0%}")
    return lines


def _credit_html(found: Credit, language_code: str | None) -> str:
    author = _cut(found.author, MAX_AUTHOR) or (text("credit_source", language_code)
                                                if found.source else "")
    parts = [_link(author, found.source) if author else "",
             _link(_cut(found.licence, MAX_LICENCE), found.licence_url) if found.licence
             else ""]
    return ", ".join(part for part in parts if part)


def credit_lines(pictured: list[FaceMatches], numbered: bool,
                 language_code: str | None) -> list[str]:
    """"Photo N: AUTHOR, LICENCE" for each gallery picture shown (the best match of each
    pictured face), one line per picture, rows showing the same picture together."""
    rows: dict[str, list[int]] = {}
    credits: dict[str, Credit] = {}
    for number, item in enumerate(pictured, start=1):
        celebrity = item.matches[0].celebrity
        found = credit(celebrity)
        if found is not None:
            credits[celebrity.id] = found
            rows.setdefault(celebrity.id, []).append(number)
    lines = []
    for celebrity_id, numbers in rows.items():
        label = (text("credit_numbered", language_code,
                      numbers=", ".join(map(str, numbers)))
                 if numbered else text("credit", language_code))
        lines.append(f"{escape(label)} {_credit_html(credits[celebrity_id], language_code)}")
    return lines


def matches_text(result: PhotoMatches, language_code: str | None,
                 limit: int = CAPTION_LIMIT, max_faces: int | None = None,
                 pictured: int = 0) -> str:
    """Per face, its closest celebrities with similarity, as Telegram HTML of at most
    `limit` visible characters; then the credits of the gallery pictures of the first
    `pictured` faces (the reply picture's rows). Ranks count from `result.skipped + 1`
    (4 on the first "More").

    Raises ValueError when no face has a match (answer with `problem_text` instead).
    """
    faces = answered_faces(result)
    if not faces:
        raise ValueError("no face with a match")
    single = len(result.faces) == 1
    credits = credit_lines(faces[:pictured], not single, language_code)
    links = _Links(MAX_LINKS - sum(line.count("<a ") for line in credits))
    shown = faces[:1] if single else faces if max_faces is None else faces[:max_faces]
    blocks = [[escape(text("result_title", language_code) if single else
                      text("result_face", language_code, number=number)),
               *_face_lines(item, language_code, links, result.skipped + 1)]
              for number, item in enumerate(shown, start=1)]
    tail = ["\n".join(credits)] if credits else []
    while True:
        hidden = len(faces) - len(blocks)
        more = [escape(text("result_more_faces", language_code, count=hidden))] if hidden else []
        caption = "\n\n".join(["\n".join(block) for block in blocks] + more + tail)
        if visible_length(caption) <= limit:
            return caption
        if len(blocks) > 1:
            blocks.pop()
        elif len(blocks[0]) > 2:
            blocks[0].pop()  # one face with many matches: its last ones go
        else:
            return caption  # cannot happen within MAX_NAME, MAX_AUTHOR and MAX_LICENCE
