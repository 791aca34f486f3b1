"""A local server that answers as the Wikidata Query Service and the Commons API do.

Wikidata and Wikimedia Commons are an edge this project cannot reach in tests, so this
stands in for them on the wire, for the tests, the harvest benchmark and a demo:

- `GET|POST /sparql?query=...`: SPARQL 1.1 query results in JSON
  (`application/sparql-results+json`: `head.vars`, `results.bindings` of typed cells,
  `xml:lang` on labels, XSD datatypes on numbers and dates). It is no SPARQL engine: it
  answers the two query shapes `index_builder/wikidata.py` sends (a keyset page of humans
  with an image by sitelinks; the details of listed items), reading their parameters
  from the query text, and answers 400 to anything else.
- `GET /w/api.php?action=query&prop=imageinfo&titles=...`: the Action API's answer with
  `formatversion=2` (pages as a list, `"missing": true`, `normalized`), `imageinfo` with
  `thumburl`/`thumbwidth`, `url`, `descriptionurl`, `sha1`, `mime` and `extmetadata`
  entries `{"value", "source", "hidden"}` as Commons returns them (HTML in `Artist`), and
  the `maxlag` error (HTTP 200, `Retry-After`).
- `GET /thumb/...`: thumbnails made on request from real face photos, scaled to the width
  asked; `GET /wiki/File:...`: a small file page.

Faults for tests: `fail_next(kind, status, retry_after)` (kind "sparql", "api", "photo"),
`maxlag_next(n)`, and per picture a `fault`: "missing" (no such file on Commons), "gone"
(the thumbnail answers 404), "truncated" (the body stops halfway), "not_an_image" (HTML
served as image/jpeg), "no_face" (a picture without a face), "no_licence" (no licence
in its metadata). Every request is recorded in `calls`; `on_photo` runs after a
thumbnail was served.

The people and credits are stand-in data: `World.from_folders` makes one person per photo
folder (e.g. `demo/photos`), crediting each photo's real source from a SOURCES.json.

Run alone: `python -m stack.wikimedia --port 8090 --photos demo/photos`, then
`python -m index_builder harvest --sparql-url http://127.0.0.1:8090/sparql
--commons-api-url http://127.0.0.1:8090/w/api.php --contact you@example.org ...`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from PIL import Image, ImageDraw

from stack.http_thread import KeepAliveHandler, ThreadedServer

ENTITY = "http://www.wikidata.org/entity/"
FILE_PATH = "http://commons.wikimedia.org/wiki/Special:FilePath/"
XSD = "http://www.w3.org/2001/XMLSchema#"
# Where WDQS and the Action API answer, on Wikimedia's hosts and here.
SPARQL_PATH = "/sparql"
API_PATH = "/w/api.php"
MAX_TITLES = 50
FAULTS = ("missing", "gone", "truncated", "not_an_image", "no_face", "no_licence")


@dataclass
class Picture:
    title: str  # "File:Name.jpg"
    source: Path | None = None  # a real photo; None: a generated picture without a face
    artist_html: str = ""
    licence: str = "CC BY-SA 4.0"
    licence_url: str = "https://creativecommons.org/licenses/by-sa/4.0"
    attribution_required: bool = True
    restrictions: str = ""  # e.g. "personality|trademarked"
    fault: str | None = None

    def original(self) -> Image.Image:
        if self.source is not None and self.fault != "no_face":
            with Image.open(self.source) as opened:
                return opened.convert("RGB")
        image = Image.new("RGB", (800, 600), (90, 140, 200))
        draw = ImageDraw.Draw(image)  # a landscape: sky, a field, a house
        draw.rectangle((0, 380, 800, 600), fill=(70, 150, 60))
        draw.rectangle((320, 260, 480, 400), fill=(170, 90, 60))
        draw.polygon([(300, 260), (400, 180), (500, 260)], fill=(120, 40, 40))
        return image

    @property
    def sha1(self) -> str:
        data = self.source.read_bytes() if self.source is not None else b""
        return hashlib.sha1(self.title.encode() + data).hexdigest()


@dataclass
class WikiPerson:
    qid: str
    labels: dict[str, str]
    sitelinks: int
    image: str | None  # a Picture's title
    birth: str | None = None  # xsd:dateTime as WDQS writes it, e.g. "1961-08-04T00:00:00Z"
    precision: int = 11
    sex: str | None = None
    articles: dict[str, str] = field(default_factory=dict)  # language -> URL
    occupations: list[str] = field(default_factory=list)


@dataclass
class World:
    people: list[WikiPerson]
    pictures: dict[str, Picture]

    @classmethod
    def from_folders(cls, root: Path, first_qid: int = 9_000_001) -> World:
        """One person per folder of `root`, their first photo as their picture; credits
        from a SOURCES.json beside or above the folders (`file`/`copy`, `repo`,
        `license`), as the project's photo folders carry."""
        sources: dict[str, dict[str, Any]] = {}
        for candidate in (root / "SOURCES.json", root.parent / "SOURCES.json"):
            if candidate.is_file():
                for entry in json.loads(candidate.read_text()):
                    for key in ("copy", "file"):
                        if entry.get(key):
                            sources[Path(entry[key]).name] = entry
                break
        people, pictures = [], {}
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        for number, folder in enumerate(folders):
            photos = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".png"))
            if not photos:
                continue
            name = folder.name.replace("_", " ")
            # Commons titles have spaces where URLs have underscores.
            title = f"File:{name} ({photos[0].stem.replace('_', ' ')}).jpg"
            origin = sources.get(photos[0].name, {})
            repo = origin.get("repo", "unknown")
            pictures[title] = Picture(
                title, photos[0],
                artist_html=f'<a href="https://github.com/{repo}" class="external">{repo}</a>',
                licence=str(origin.get("license", "unknown")).split(" ")[0],
                licence_url=f"https://github.com/{repo}", attribution_required=True)
            qid = f"Q{first_qid + number}"
            people.append(WikiPerson(
                qid, {"en": name}, sitelinks=200 - number, image=title,
                birth="1970-01-01T00:00:00Z", sex=None,
                articles={"en": f"https://en.wikipedia.org/wiki/{quote(folder.name)}"}))
        return cls(people, pictures)

    @classmethod
    def synthetic(cls, count: int, root: Path, first_qid: int = 8_000_001) -> World:
        """`count` people for load tests, their pictures cycling through every photo under
        `root` (each title, hence each download, distinct)."""
        photos = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
        if not photos:
            raise ValueError(f"no photos under {root}")
        people, pictures = [], {}
        for number in range(count):
            qid = f"Q{first_qid + number}"
            title = f"File:Person {number} portrait.jpg"
            pictures[title] = Picture(title, photos[number % len(photos)],
                                      artist_html="<span>Stand-in photographer</span>")
            people.append(WikiPerson(
                qid, {"en": f"Person {number}", "ru": f"Персона {number}"},
                sitelinks=10 + (count - number) // 3, image=title,
                birth="1980-05-17T00:00:00Z", sex="female" if number % 2 else "male",
                articles={"en": f"https://en.wikipedia.org/wiki/Person_{number}"}))
        return cls(people, pictures)


@dataclass
class Call:
    kind: str  # "sparql", "api", "photo", "page"
    path: str
    at: float
    status: int


class _Failure:
    def __init__(self, status: int, retry_after: int | None) -> None:
        self.status = status
        self.retry_after = retry_after


_PAGE = {
    "min": re.compile(r"FILTER\(\?sitelinks >= (\d+)\)"),
    "occupations": re.compile(r"VALUES \?occupation \{([^}]*)\}"),
    "after": re.compile(r'FILTER\(\?sitelinks < (\d+) \|\| \(\?sitelinks = \d+ && '
                        r'STR\(\?item\) > "([^"]+)"\)\)'),
    "limit": re.compile(r"LIMIT (\d+)"),
}
_DETAILS = {
    "items": re.compile(r"VALUES \?item \{([^}]*)\}"),
    "labels": re.compile(r"LANG\(\?label\) IN \(([^)]*)\)"),
    "wikis": re.compile(r"VALUES \?wiki \{([^}]*)\}"),
}


def _uri(value: str) -> dict[str, str]:
    return {"type": "uri", "value": value}


def _literal(value: str, datatype: str | None = None, lang: str | None = None,
             ) -> dict[str, str]:
    cell = {"type": "literal", "value": value}
    if datatype:
        cell["datatype"] = XSD + datatype
    if lang:
        cell["xml:lang"] = lang
    return cell


class WikimediaServer(ThreadedServer):
    name = "wikimedia"

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.world = world
        self.calls: list[Call] = []
        self.on_photo: Callable[[str], None] | None = None
        self._failures: dict[str, list[_Failure]] = {"sparql": [], "api": [], "photo": []}
        self._maxlag = 0
        self._thumbs: dict[tuple[str, str, int], tuple[bytes, int, int]] = {}
        self._facts: dict[tuple[str, str, str], tuple[str, int, int, int]] = {}
        self._thumb_lock = threading.Lock()

    @property
    def sparql_url(self) -> str:
        return self.url + SPARQL_PATH

    @property
    def api_url(self) -> str:
        return self.url + API_PATH

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def start(self) -> WikimediaServer:
        return super().start()

    # -- faults and records

    def fail_next(self, kind: str, status: int, retry_after: int | None = None,
                  times: int = 1) -> None:
        with self._lock:
            self._failures[kind] += [_Failure(status, retry_after) for _ in range(times)]

    def maxlag_next(self, times: int = 1) -> None:
        with self._lock:
            self._maxlag += times

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(call.kind for call in self.calls)

    def _record(self, kind: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append(Call(kind, path, time.monotonic(), status))
            self._lock.notify_all()

    def _take_failure(self, kind: str) -> _Failure | None:
        with self._lock:
            return self._failures[kind].pop(0) if self._failures[kind] else None

    # -- WDQS

    def sparql(self, query: str) -> dict[str, Any]:
        if "VALUES ?item" in query:
            return self._details(query)
        if "wikibase:sitelinks" in query and "LIMIT" in query:
            return self._page(query)
        raise ValueError("the stand-in answers only the harvester's two query shapes")

    def _page(self, query: str) -> dict[str, Any]:
        least = int(_PAGE["min"].search(query).group(1))  # type: ignore[union-attr]
        limit = int(_PAGE["limit"].search(query).group(1))  # type: ignore[union-attr]
        occupations = _PAGE["occupations"].search(query)
        wanted = set(re.findall(r"wd:(Q\d+)", occupations.group(1))) if occupations else None
        after = _PAGE["after"].search(query)
        rows = sorted((p for p in self.world.people if p.image and p.sitelinks >= least
                       and (wanted is None or wanted & set(p.occupations))),
                      key=lambda p: (-p.sitelinks, ENTITY + p.qid))
        if after:
            links, item = int(after.group(1)), after.group(2)
            rows = [p for p in rows if p.sitelinks < links
                    or (p.sitelinks == links and ENTITY + p.qid > item)]
        bindings = [{"item": _uri(ENTITY + p.qid),
                     "sitelinks": _literal(str(p.sitelinks), "integer")} for p in rows[:limit]]
        return {"head": {"vars": ["item", "sitelinks"]}, "results": {"bindings": bindings}}

    def _details(self, query: str) -> dict[str, Any]:
        items = set(re.findall(r"wd:(Q\d+)", _DETAILS["items"].search(query).group(1)))  # type: ignore[union-attr]
        labels = set(re.findall(r'"([^"]+)"', _DETAILS["labels"].search(query).group(1)))  # type: ignore[union-attr]
        wikis = re.findall(r"<https://([^.]+)\.wikipedia\.org/>",
                           _DETAILS["wikis"].search(query).group(1))  # type: ignore[union-attr]
        bindings: list[dict[str, Any]] = []
        for person in self.world.people:
            if person.qid not in items:
                continue
            item = _uri(ENTITY + person.qid)
            if person.image:
                bindings.append({"item": item, "image": _uri(
                    FILE_PATH + quote(person.image.split(":", 1)[1]))})
            if person.birth:
                bindings.append({"item": item, "birth": _literal(person.birth, "dateTime"),
                                 "precision": _literal(str(person.precision), "integer")})
            if person.sex:
                bindings.append({"item": item, "sexLabel": _literal(person.sex, lang="en")})
            for lang, label in person.labels.items():
                if lang in labels:
                    bindings.append({"item": item, "label": _literal(label, lang=lang)})
            for lang, url in person.articles.items():
                if lang in wikis:
                    bindings.append({"item": item, "article": _uri(url),
                                     "wiki": _uri(f"https://{lang}.wikipedia.org/")})
        return {"head": {"vars": ["item", "image", "birth", "precision", "sexLabel", "label",
                                  "article", "wiki"]},
                "results": {"bindings": bindings}}

    # -- Commons

    def thumbnail(self, title: str, width: int) -> tuple[bytes, int, int]:
        with self._thumb_lock:
            picture = self.world.pictures[title]
            key = (title, str(picture.source), width)
            if key not in self._thumbs:
                image = picture.original()
                if image.width > width:
                    image = image.resize((width, round(image.height * width / image.width)),
                                         Image.Resampling.LANCZOS)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=85)
                self._thumbs[key] = (buffer.getvalue(), image.width, image.height)
            return self._thumbs[key]

    def facts(self, picture: Picture) -> tuple[str, int, int, int]:
        """(sha1, width, height, bytes) of a picture's original, computed once."""
        key = (picture.title, str(picture.source), str(picture.fault))
        with self._thumb_lock:
            if key not in self._facts:
                original = picture.original()
                size = len(picture.source.read_bytes()) if picture.source else 0
                self._facts[key] = (picture.sha1, original.width, original.height, size)
            return self._facts[key]

    def _thumb_url(self, picture: Picture, width: int) -> str:
        name = picture.title.split(":", 1)[1].replace(" ", "_")
        folder = self.facts(picture)[0][:2]
        return f"{self.url}/thumb/{folder}/{quote(name)}/{width}px-{quote(name)}"

    def _page_url(self, picture: Picture) -> str:
        return f"{self.url}/wiki/{quote(picture.title.replace(' ', '_'), safe=':()')}"

    def imageinfo(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("action") != "query" or params.get("prop") != "imageinfo":
            return {"error": {"code": "badvalue", "info": "the stand-in answers imageinfo only"}}
        titles = [t for t in params.get("titles", "").split("|") if t]
        if len(titles) > MAX_TITLES:
            return {"error": {"code": "toomanyvalues",
                              "info": f"Too many values supplied for parameter \"titles\". "
                                      f"The limit is {MAX_TITLES}."}}
        width = int(params.get("iiurlwidth", "0") or 0)
        wanted = set(params.get("iiextmetadatafilter", "").split("|")) - {""}
        normalized, pages = [], []
        for asked in titles:
            title = asked.replace("_", " ")
            if title != asked:
                normalized.append({"fromencoded": False, "from": asked, "to": title})
            picture = self.world.pictures.get(title)
            if picture is None or picture.fault == "missing":
                pages.append({"ns": 6, "title": title, "missing": True, "known": False,
                              "imagerepository": ""})
                continue
            meta = {
                "Artist": picture.artist_html,
                "LicenseShortName": picture.licence,
                "LicenseUrl": picture.licence_url,
                "UsageTerms": picture.licence,
                "AttributionRequired": "true" if picture.attribution_required else "false",
                "Copyrighted": "True",
                "Restrictions": picture.restrictions,
            }
            if picture.fault == "no_licence":
                meta = {"Artist": picture.artist_html}
            extmetadata = {key: {"value": value, "source": "commons-desc-page", "hidden": ""}
                           for key, value in meta.items() if value and (not wanted
                                                                        or key in wanted)}
            sha1, original_width, original_height, size = self.facts(picture)
            info: dict[str, Any] = {
                "size": size, "width": original_width, "height": original_height,
                "url": f"{self.url}/original/{quote(title.split(':', 1)[1])}",
                "descriptionurl": self._page_url(picture),
                "descriptionshorturl": f"{self.url}/w/index.php?curid={abs(hash(title)) % 10**8}",
                "sha1": sha1, "mime": "image/jpeg", "extmetadata": extmetadata,
            }
            if width:
                thumb_width = min(width, original_width)
                info.update(thumburl=self._thumb_url(picture, thumb_width),
                            thumbwidth=thumb_width,
                            thumbheight=round(original_height * thumb_width / original_width))
            pages.append({"pageid": int(sha1[:6], 16), "ns": 6, "title": title,
                          "imagerepository": "local", "imageinfo": [info]})
        query: dict[str, Any] = {"pages": pages}
        if normalized:
            query["normalized"] = normalized
        return {"batchcomplete": True, "query": query}

    def picture_for(self, path: str) -> tuple[Picture, int] | None:
        """The picture and width a /thumb/ path names."""
        match = re.match(r"^/thumb/[0-9a-f]{2}/([^/]+)/(\d+)px-", path)
        if not match:
            return None
        title = "File:" + unquote(match.group(1)).replace("_", " ")
        picture = self.world.pictures.get(title)
        return (picture, int(match.group(2))) if picture else None


def _handler_for(server: WikimediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(KeepAliveHandler):

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, kind: str, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None, cut: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if cut:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
            self.wfile.flush()
            server._record(kind, self.path, status)

        def _json(self, kind: str, body: dict[str, Any], status: int = 200,
                  content_type: str = "application/json; charset=utf-8",
                  headers: dict[str, str] | None = None) -> None:
            self._send(kind, status, json.dumps(body).encode(), content_type, headers)

        def _fault(self, kind: str) -> bool:
            failure = server._take_failure(kind)
            if failure is None:
                return False
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            self._send(kind, failure.status, b"<html><body>Too many requests</body></html>",
                       "text/html; charset=utf-8", headers)
            return True

        def _params(self) -> dict[str, str]:
            query = urlsplit(self.path).query
            if self.command == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                query = self.rfile.read(length).decode("utf-8")
            return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}

        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _route(self) -> None:
            path = urlsplit(self.path).path
            if path == SPARQL_PATH:
                self._sparql()
            elif path == API_PATH:
                self._api()
            elif path.startswith("/thumb/"):
                self._thumb(path)
            elif path.startswith("/wiki/"):
                title = unquote(path[len("/wiki/"):]).replace("_", " ")
                self._send("page", 200, f"<html><body><h1>{title}</h1></body></html>".encode(),
                           "text/html; charset=utf-8")
            else:
                self._send("other", 404, b"not found", "text/plain")

        def _sparql(self) -> None:
            params = self._params()
            if self._fault("sparql"):
                return
            try:
                body = server.sparql(params.get("query", ""))
            except (ValueError, AttributeError) as exc:
                self._send("sparql", 400, f"MalformedQueryException: {exc}".encode(),
                           "text/plain")
                return
            self._json("sparql", body, content_type="application/sparql-results+json;"
                       "charset=utf-8")

        def _api(self) -> None:
            params = self._params()
            if self._fault("api"):
                return
            with server._lock:
                lagging = server._maxlag > 0 and "maxlag" in params
                if lagging:
                    server._maxlag -= 1
            if lagging:
                self._json("api", {"error": {"code": "maxlag",
                                             "info": "Waiting for a database server: 7 "
                                                     "seconds lagged.", "host": "db1",
                                             "lag": 7}},
                           headers={"Retry-After": "1", "X-Database-Lag": "7"})
                return
            self._json("api", server.imageinfo(params))

        def _thumb(self, path: str) -> None:
            if self._fault("photo"):
                return
            found = server.picture_for(path)
            if found is None or found[0].fault == "gone":
                self._send("photo", 404, b"<html><body>404 Not Found</body></html>",
                           "text/html; charset=utf-8")
            elif found[0].fault == "not_an_image":
                self._send("photo", 200, b"<!DOCTYPE html><html><body>Error: this is not "
                           b"the picture</body></html>", "image/jpeg")
            else:
                data, _, _ = server.thumbnail(found[0].title, found[1])
                self._send("photo", 200, data, "image/jpeg",
                           cut=found[0].fault == "truncated")
            if server.on_photo is not None:
                server.on_photo(path)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stack.wikimedia", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--photos", default="demo/photos",
                        help="one folder of photos per person (default demo/photos)")
    args = parser.parse_args(argv)
    server = WikimediaServer(World.from_folders(Path(args.photos)), args.host, args.port)
    server.start()
    print(f"WDQS at {server.sparql_url}, Commons API at {server.api_url} "
          f"({len(server.world.people)} people); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
