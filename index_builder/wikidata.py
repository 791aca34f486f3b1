"""Who is in the gallery: people from the Wikidata Query Service, most-linked first.

Two queries per page, both SPARQL 1.1 answered as JSON results:

- `page_query`: humans (P31 Q5) with an image (P18), their sitelink count as popularity,
  optionally by occupation (P106), ordered by sitelinks then item, and paged by keyset
  (the last page's (sitelinks, item) bounds the next) rather than OFFSET, so the service
  never re-sorts and skips what earlier pages returned; each page stays far below the
  60 s query limit however deep `--limit` goes.
- `details_query`: for one page's items, each fact as its own UNION branch (image, date
  of birth with its precision, sex or gender, labels, Wikipedia articles), so several
  values of one property never multiply into a cross product.

Who is left out is decided here too (`age_rule`): never a minor.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import unquote

DEFAULT_SPARQL_URL = "https://query.wikidata.org/sparql"
ENTITY = "http://www.wikidata.org/entity/"
ADULT_AGE = 18
# Wikidata time precisions: 11 day, 10 month, 9 year, 8 decade, 7 century, 6 millennium.
DAY, MONTH, YEAR = 11, 10, 9
_QID = re.compile(r"^Q[1-9][0-9]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]+)*$")


def is_qid(text: str) -> bool:
    return bool(_QID.match(text))


def check_languages(languages: list[str]) -> list[str]:
    bad = [lang for lang in languages if not _LANGUAGE.match(lang)]
    if bad or not languages:
        raise ValueError(f"not language codes: {', '.join(bad) or '(none)'}")
    return languages


@dataclass(frozen=True)
class Keyset:
    """Where the previous page ended: its last row's sitelinks and item IRI."""

    sitelinks: int
    item: str


def page_query(size: int, min_sitelinks: int, occupations: list[str],
               after: Keyset | None) -> str:
    for qid in occupations:
        if not is_qid(qid):
            raise ValueError(f"occupation {qid!r} is not a Wikidata item id (Q...)")
    occupation = ""
    if occupations:
        values = " ".join(f"wd:{q}" for q in occupations)
        occupation = (f"  FILTER EXISTS {{ VALUES ?occupation {{ {values} }} "
                      "?item wdt:P106 ?occupation . }\n")
    keyset = ""
    if after is not None:
        keyset = (f"  FILTER(?sitelinks < {after.sitelinks} || (?sitelinks = {after.sitelinks}"
                  f' && STR(?item) > "{after.item}"))\n')
    return (
        "SELECT ?item ?sitelinks WHERE {\n"
        "  ?item wdt:P31 wd:Q5 ; wdt:P18 ?anyImage ; wikibase:sitelinks ?sitelinks .\n"
        f"  FILTER(?sitelinks >= {min_sitelinks})\n"
        f"{occupation}{keyset}"
        "}\n"
        "GROUP BY ?item ?sitelinks\n"
        "ORDER BY DESC(?sitelinks) ASC(STR(?item))\n"
        f"LIMIT {size}\n")


def details_query(qids: list[str], languages: list[str]) -> str:
    items = " ".join(f"wd:{q}" for q in qids)
    labels = ", ".join(f'"{lang}"' for lang in [*languages, "mul"])
    wikis = " ".join(f"<https://{lang}.wikipedia.org/>" for lang in languages)
    return (
        "SELECT ?item ?image ?birth ?precision ?sexLabel ?label ?article ?wiki WHERE {\n"
        f"  VALUES ?item {{ {items} }}\n"
        "  { ?item wdt:P18 ?image . }\n"
        "  UNION { ?item p:P569 ?birthStatement . ?birthStatement a wikibase:BestRank ;\n"
        "          psv:P569 [ wikibase:timeValue ?birth ; wikibase:timePrecision ?precision ] . }\n"
        "  UNION { ?item wdt:P21 ?sex . ?sex rdfs:label ?sexLabel .\n"
        '          FILTER(LANG(?sexLabel) = "en") }\n'
        f"  UNION {{ ?item rdfs:label ?label . FILTER(LANG(?label) IN ({labels})) }}\n"
        f"  UNION {{ VALUES ?wiki {{ {wikis} }}\n"
        "          ?article schema:about ?item ; schema:isPartOf ?wiki . }\n"
        "}\n")


def _value(binding: dict[str, Any], name: str) -> str | None:
    cell = binding.get(name)
    return None if cell is None else str(cell.get("value"))


def parse_page(result: dict[str, Any]) -> list[tuple[str, int, Keyset]]:
    """(Q-id, sitelinks, keyset of this row) per row of a page query's results."""
    rows = []
    for binding in result.get("results", {}).get("bindings", []):
        item, links = _value(binding, "item"), _value(binding, "sitelinks")
        if item is None or links is None or not item.startswith(ENTITY):
            continue
        qid = item[len(ENTITY):]
        if is_qid(qid):
            rows.append((qid, int(links), Keyset(int(links), item)))
    return rows


@dataclass(frozen=True)
class Birth:
    year: int
    month: int
    day: int
    precision: int

    def iso(self) -> str:
        """ISO 8601 to the known precision (year, year-month or full date)."""
        year = f"{self.year:04d}" if self.year >= 0 else f"-{-self.year:04d}"
        if self.precision >= DAY:
            return f"{year}-{self.month:02d}-{self.day:02d}"
        if self.precision == MONTH:
            return f"{year}-{self.month:02d}"
        return year


_TIME = re.compile(r"^([+-]?)(\d+)-(\d\d)-(\d\d)")


def parse_birth(value: str, precision: str | None) -> Birth | None:
    match = _TIME.match(value)
    if not match:
        return None
    sign, year, month, day = match.groups()
    try:
        known = int(precision) if precision is not None else DAY
    except ValueError:
        known = YEAR
    return Birth(-int(year) if sign == "-" else int(year), max(1, int(month)),
                 max(1, int(day)), known)


def latest_birthday(birth: Birth) -> date | None:
    """The latest date the person can have been born on, given the date's precision;
    None for dates before year 1 (those people are long adults)."""
    if birth.year < 1:
        return None
    if birth.precision >= DAY:
        return date(birth.year, birth.month, min(birth.day, calendar.monthrange(
            birth.year, birth.month)[1]))
    if birth.precision == MONTH:
        return date(birth.year, birth.month, calendar.monthrange(birth.year, birth.month)[1])
    # A year, or a decade/century/... whose stored year may be its first or its middle:
    # the whole span after it counts, which errs towards leaving a person out.
    span = 0 if birth.precision >= YEAR else 10 ** (YEAR - birth.precision)
    return date(min(9999, birth.year + span), 12, 31)


def is_adult(births: list[Birth], today: date) -> bool | None:
    """True when every recorded date of birth is 18 or more years before `today`,
    False when any could be later, None when there is no date at all. Several dates
    (conflicting sources) all have to pass."""
    if not births:
        return None
    for birth in births:
        latest = latest_birthday(birth)
        if latest is None:
            continue
        try:
            eighteenth = latest.replace(year=latest.year + ADULT_AGE)
        except ValueError:  # 29 February
            eighteenth = date(latest.year + ADULT_AGE, 3, 1)
        if eighteenth > today:
            return False
    return True


@dataclass
class Person:
    id: str
    popularity: int
    images: set[str] = field(default_factory=set)  # Commons file titles ("File:...")
    births: list[Birth] = field(default_factory=list)
    sex: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def image(self) -> str | None:
        """One image, the same on every run when an item has several."""
        return min(self.images) if self.images else None

    def names(self, languages: list[str]) -> dict[str, str]:
        return {lang: self.labels[lang] for lang in languages if lang in self.labels}

    def name(self, languages: list[str]) -> str | None:
        """The English label, else the first requested language with one, else `mul`."""
        for lang in ["en", *languages, "mul"]:
            if lang in self.labels:
                return self.labels[lang]
        return None


def commons_title(image_url: str) -> str | None:
    """`http://commons.wikimedia.org/wiki/Special:FilePath/A%20b.jpg` -> `File:A b.jpg`."""
    marker = "Special:FilePath/"
    if marker not in image_url:
        return None
    name = unquote(image_url.split(marker, 1)[1]).replace("_", " ").strip()
    return f"File:{name}" if name else None


def parse_details(result: dict[str, Any], people: dict[str, Person]) -> None:
    """Fold a details query's rows into `people` (Q-id -> Person)."""
    for binding in result.get("results", {}).get("bindings", []):
        item = _value(binding, "item") or ""
        person = people.get(item[len(ENTITY):]) if item.startswith(ENTITY) else None
        if person is None:
            continue
        image = _value(binding, "image")
        if image and (title := commons_title(image)):
            person.images.add(title)
        birth = _value(binding, "birth")
        if birth and (parsed := parse_birth(birth, _value(binding, "precision"))):
            person.births.append(parsed)
        sex = _value(binding, "sexLabel")
        if sex and (person.sex is None or sex < person.sex):
            person.sex = sex
        label = binding.get("label")
        if label and label.get("xml:lang"):
            person.labels.setdefault(label["xml:lang"], label["value"])
        article, wiki = _value(binding, "article"), _value(binding, "wiki")
        if article and wiki:
            lang = wiki.split("//", 1)[-1].split(".", 1)[0]
            person.links.setdefault(lang, article)
