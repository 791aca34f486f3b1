"""What the index knows about a celebrity besides their face: names per language, links
to their Wikipedia articles, and the credit of their picture.

These travel in `Celebrity.extra` as the catalogue gave them (docs/catalog.md):
`names` {language: label}, `links` {language: URL}, `credit` {author, licence,
licence_url, source, attribution_required}. Any of them may be missing or malformed (an
older index, a hand-written catalogue): then the English `name`, no link, no credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.index import Celebrity

FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class Credit:
    """Who made a gallery picture and under which licence (Wikimedia's "TASL")."""

    author: str = ""
    licence: str = ""
    licence_url: str = ""
    source: str = ""  # the page the picture comes from (its Commons file page)
    attribution_required: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"author": self.author, "licence": self.licence,
                "licence_url": self.licence_url, "source": self.source,
                "attribution_required": self.attribution_required}


def language_keys(language_code: str | None) -> list[str]:
    """Telegram's `language_code` as keys to look up, most specific first:
    "pt-BR" -> ["pt-br", "pt"], "ru" -> ["ru"]."""
    code = (language_code or "").strip().lower().replace("_", "-")
    if not code:
        return []
    base = code.split("-")[0]
    return [code] if code == base else [code, base]


def _texts(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k).lower(): v.strip() for k, v in value.items()
            if isinstance(v, str) and v.strip()}


def _web_url(value: Any) -> str:
    """Only http(s) addresses become links: a catalogue cannot smuggle in other schemes."""
    if isinstance(value, str) and value.strip().lower().startswith(("https://", "http://")):
        return value.strip()
    return ""


def names(celebrity: Celebrity) -> dict[str, str]:
    return _texts(celebrity.extra.get("names"))


def links(celebrity: Celebrity) -> dict[str, str]:
    return {lang: url for lang, url in _texts(celebrity.extra.get("links")).items()
            if _web_url(url)}


def in_language(values: dict[str, str], language_code: str | None) -> str | None:
    """The value for the user's language ("pt-br", then "pt"), or None."""
    return next((values[key] for key in language_keys(language_code) if key in values), None)


def local_name(celebrity: Celebrity, language_code: str | None) -> str:
    """The celebrity's name in the user's language; the catalogue's `name` otherwise."""
    return in_language(names(celebrity), language_code) or celebrity.name


def article_url(celebrity: Celebrity, language_code: str | None) -> str:
    """Their Wikipedia article in the user's language, else the English one, else ""."""
    known = links(celebrity)
    return in_language(known, language_code) or known.get(FALLBACK_LANGUAGE, "")


def credit(celebrity: Celebrity) -> Credit | None:
    """The credit of the celebrity's picture, or None when the index has none."""
    raw = celebrity.extra.get("credit")
    if not isinstance(raw, dict):
        return None
    text = {key: raw[key].strip() for key in ("author", "licence")
            if isinstance(raw.get(key), str)}
    found = Credit(author=text.get("author", ""), licence=text.get("licence", ""),
                   licence_url=_web_url(raw.get("licence_url")),
                   source=_web_url(raw.get("source")),
                   attribution_required=raw.get("attribution_required") is not False)
    return found if found.author or found.licence or found.source else None
