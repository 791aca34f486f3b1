"""Which picture, under which licence: Wikimedia Commons' `imageinfo` with `extmetadata`.

One Action API request describes up to 50 files: a thumbnail URL of the requested
width, the file's SHA-1 (a changed file gets a new name in the photo store), its page,
and the licence and author that Commons extracts from the file page. A file without a
licence record is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

DEFAULT_COMMONS_API_URL = "https://commons.wikimedia.org/w/api.php"
TITLES_PER_REQUEST = 50  # the Action API's limit for a client without the apihighlimits right
# Wide enough for the detector to find a face of a head-and-shoulders portrait, and one of
# Wikimedia's standard thumbnail steps, which its caches hold already.
DEFAULT_WIDTH = 960
_METADATA = ("Artist", "LicenseShortName", "LicenseUrl", "AttributionRequired", "UsageTerms",
             "Restrictions")


class _Text(HTMLParser):
    """Text of an HTML fragment; the stdlib parser, since extmetadata is small, trusted
    markup (links and spans) and only its text is wanted."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "li", "div"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


@dataclass(frozen=True)
class FileInfo:
    title: str
    thumb_url: str
    sha1: str
    mime: str
    credit: dict[str, Any]
    # Commons' restriction templates beyond copyright, e.g. "personality" (the person
    # shown may have rights over the use of their likeness) or "trademarked".
    restrictions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unusable:
    title: str
    reason: str  # "missing_file", "no_licence", "no_thumbnail"


def imageinfo_params(titles: list[str], width: int) -> dict[str, str]:
    return {"action": "query", "prop": "imageinfo", "titles": "|".join(titles),
            "iiprop": "url|size|mime|sha1|extmetadata", "iiurlwidth": str(width),
            "iiextmetadatafilter": "|".join(_METADATA), "iiextmetadatalanguage": "en"}


def _meta(extmetadata: dict[str, Any], name: str) -> str:
    entry = extmetadata.get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    return str(value).strip() if value is not None else ""


def credit_of(info: dict[str, Any]) -> dict[str, Any] | None:
    """The credit record the catalogue carries, or None when there is no licence."""
    meta = info.get("extmetadata") or {}
    licence = html_to_text(_meta(meta, "LicenseShortName"))
    if not licence:
        return None
    return {
        "author": html_to_text(_meta(meta, "Artist")) or None,
        "licence": licence,
        "licence_url": _meta(meta, "LicenseUrl") or None,
        "source": info.get("descriptionurl"),
        "attribution_required": _meta(meta, "AttributionRequired").lower() != "false",
    }


def parse_imageinfo(result: dict[str, Any],
                    asked: list[str]) -> tuple[dict[str, FileInfo], list[Unusable]]:
    """Usable files by the title that was asked for, and the unusable ones with why.

    The API answers under normalised titles (`normalized` maps them back); formatversion
    2 lists pages as a list, a missing file as `"missing": true`.
    """
    query = result.get("query") or {}
    back = {n["to"]: n["from"] for n in query.get("normalized", [])}
    usable: dict[str, FileInfo] = {}
    unusable: list[Unusable] = []
    seen = set()
    for page in query.get("pages", []):
        title = back.get(page.get("title"), page.get("title"))
        seen.add(title)
        infos = page.get("imageinfo") or []
        if page.get("missing") or page.get("invalid") or not infos:
            unusable.append(Unusable(title, "missing_file"))
            continue
        info = infos[0]
        credit = credit_of(info)
        if credit is None:
            unusable.append(Unusable(title, "no_licence"))
            continue
        thumb = info.get("thumburl") or info.get("url")
        if not thumb:
            unusable.append(Unusable(title, "no_thumbnail"))
            continue
        restrictions = _meta(info.get("extmetadata") or {}, "Restrictions")
        usable[title] = FileInfo(title, thumb, str(info.get("sha1") or ""),
                                 str(info.get("mime") or ""), credit,
                                 tuple(r for r in restrictions.split("|") if r))
    unusable.extend(Unusable(t, "missing_file") for t in asked if t not in seen)
    return usable, unusable
