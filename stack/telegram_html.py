"""Telegram's HTML parse mode, as the local Bot API server applies it.

Telegram turns a message sent with `parse_mode=HTML` into plain text plus entities
(offsets and lengths in UTF-16 code units) and refuses markup it does not support, and
a bare "<" or ">", with 400 "Bad Request: can't parse entities: ...". Entities: &lt;,
&gt;, &amp;, &quot; and numeric ones. The tags are those of the Bot API's
"Formatting options" (b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler",
tg-spoiler, a href, code, pre, blockquote, tg-emoji); `<a href>` becomes a `text_link`
entity.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

ENTITY_TYPES = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic",
                "u": "underline", "ins": "underline", "s": "strikethrough",
                "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
                "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
                "blockquote": "blockquote", "tg-emoji": "custom_emoji"}


NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlError(ValueError):
    """Markup Telegram would refuse; the message is Telegram's wording after the prefix."""


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.parts: list[str] = []
        self.length = 0
        self.open: list[tuple[str, int, dict[str, Any]]] = []
        self.entities: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ENTITY_TYPES:
            raise HtmlError(f'Unsupported start tag "{tag}"')
        values = dict(attrs)
        extra: dict[str, Any] = {}
        if tag == "a":
            if not values.get("href"):
                raise HtmlError("Can't find end of a URL")
            extra["url"] = values["href"]
        elif tag == "span" and values.get("class") != "tg-spoiler":
            raise HtmlError('Tag "span" must have class "tg-spoiler"')
        self.open.append((tag, self.length, extra))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1][0] != tag:
            raise HtmlError(f'Unmatched end tag at byte offset {self.getpos()[1]}, '
                            f'expected "</{self.open[-1][0] if self.open else ""}>", '
                            f'found "</{tag}>"')
        _, start, extra = self.open.pop()
        if self.length > start:
            self.entities.append({"type": ENTITY_TYPES[tag], "offset": start,
                                  "length": self.length - start, **extra})

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            raise HtmlError(f'Unexpected "{"<" if "<" in data else ">"}" in text: write '
                            "&lt; or &gt;")
        self._text(data)

    def handle_entityref(self, name: str) -> None:
        # Telegram knows these named entities; others stay as written.
        self._text(NAMED.get(name, f"&{name};"))

    def handle_charref(self, name: str) -> None:
        try:
            self._text(chr(int(name[1:], 16) if name[:1] in "xX" else int(name)))
        except (ValueError, OverflowError):
            raise HtmlError(f"Invalid character reference &#{name};") from None

    def _text(self, data: str) -> None:
        self.parts.append(data)
        self.length += _utf16(data)


def parse_html(markup: str) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, entities sorted by offset) of `markup`; `HtmlError` when refused."""
    parser = _Parser()
    parser.feed(markup)
    parser.close()
    if parser.open:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{parser.open[-1][0]}"')
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parser.parts), entities


def text_length(text: str) -> int:
    """A text's length as Telegram's limits count it (UTF-16 code units)."""
    return _utf16(text)
