"""Entry points: the command line (`python main.py match ...`) and, for Cloud Functions,
the `webhook` and `worker` functions (their code lives in `functions/`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import functions_framework

from shared.config import Settings
from shared.cpu import choose_blas_kernels
from shared.instance import Lazy, long_lived

# OpenBLAS reads OPENBLAS_CORETYPE once, when dlib loads its copy: named here, at the
# entry point of both functions and the command line, it takes effect whatever imports
# dlib first (shared/cpu.py).
choose_blas_kernels()

if TYPE_CHECKING:
    import flask
    import flask.typing
    from cloudevents.http import CloudEvent


# -- Cloud Functions: thin entry points; the code lives in functions/ and is imported on
# first call, so each function pays only for what it uses. What a function imports stays
# for its instance's life, so it is imported inside `long_lived()` (shared/instance.py).

def _import_webhook() -> Callable[[flask.Request], flask.typing.ResponseReturnValue]:
    with long_lived():
        from functions.webhook import handle_request
    return handle_request


def _import_worker() -> Callable[[CloudEvent], None]:
    with long_lived():
        from functions.worker import handle_event
    return handle_event


webhook_code = Lazy(_import_webhook)
worker_code = Lazy(_import_worker)


@functions_framework.http
def webhook(request: flask.Request) -> flask.typing.ResponseReturnValue:
    """HTTP function: Telegram webhook updates in, jobs on Pub/Sub out."""
    return webhook_code()(request)


@functions_framework.cloud_event
def worker(event: CloudEvent) -> None:
    """Pub/Sub-triggered function: one job in, one reply in the chat."""
    worker_code()(event)


# -- the command line


def _match(args: argparse.Namespace) -> int:
    from shared.images import ImageError
    from shared.index_store import load_current
    from shared.manifest import IndexMismatch
    from shared.matching import match_photo, matches_json
    from shared.models import ModelError, load_models
    from shared.storage import StoreError

    settings = Settings.from_env()
    try:
        _, index, photos = load_current(args.index or settings.index_uri,
                                        settings.cache_dir + "/index")
        models = load_models()
    except (IndexMismatch, ModelError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.top is not None:
        settings = replace(settings, top_k=args.top)
    failed = False
    for number, photo in enumerate(args.photos, start=1):
        try:
            result = match_photo(Path(photo).read_bytes(), index, models, settings)
        except (ImageError, OSError) as exc:
            failed = True
            code = exc.code if isinstance(exc, ImageError) else "unreadable_image"
            message = exc.message if isinstance(exc, ImageError) else f"cannot read file: {exc}"
            _emit(args, {"photo": photo, "error": {"code": code, "message": message}})
            continue
        if not result.faces:
            _emit(args, {"photo": photo,
                         "error": {"code": "no_face", "message": "no face was found"}})
            continue
        _emit(args, {"photo": photo, "similarity_method": result.method,
                     "faces": matches_json(result, args.language)})
        if args.draw:
            _draw(result, photos, args.draw, number if len(args.photos) > 1 else None)
    return 1 if failed else 0


def _emit(args: argparse.Namespace, record: dict) -> None:
    if args.json:
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return
    print(record["photo"])
    if "error" in record:
        print(f"  {record['error']['code']}: {record['error']['message']}")
        return
    for number, face in enumerate(record["faces"], start=1):
        print(f"  face {number} at {tuple(face['box'])}")
        for rank, match in enumerate(face["matches"], start=1):
            score = "themself" if match["themself"] else f"{match['similarity']:7.1%}"
            print(f"    {rank}. {_local_name(match, args.language):<28} "
                  f"{score:>8}   distance {match['distance']:.3f}"
                  f"   ({record['similarity_method']})")
            if "url" in match:
                print(f"       {match['url']}")
            if "credit" in match:
                print(f"       {_credit_line(match['credit'])}")
    sys.stdout.flush()


def _local_name(match: dict, language: str) -> str:
    from shared.people import in_language

    return in_language(match.get("names", {}), language) or match["name"]


def _credit_line(credit: dict) -> str:
    """"photo: AUTHOR, LICENCE <licence url>, SOURCE": the credit of the picture --draw
    shows for this celebrity."""
    licence = " ".join(part for part in (credit["licence"], credit["licence_url"] and
                                         f"<{credit['licence_url']}>") if part)
    return "photo: " + ", ".join(part for part in (credit["author"], licence,
                                                   credit["source"]) if part)


def _draw(result, photos, out: str, number: int | None) -> None:
    from shared.render import render_matches

    path = Path(out)
    if number is not None:
        path = path.with_name(f"{path.stem}-{number}{path.suffix}")

    render_matches(result, photos).save(path)
    print(f"  picture saved to {path}", file=sys.stderr)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    match = commands.add_parser("match", help="find the celebrities each face looks like")
    match.add_argument("photos", nargs="+", metavar="PHOTO")
    match.add_argument("--index", help="index directory or builder output root "
                       "(default: LOOKALIKE_INDEX_URI or the bundled demo gallery)")
    match.add_argument("--top", type=int, help="celebrities per face "
                       f"(default: LOOKALIKE_TOP_K or {Settings.top_k})")
    match.add_argument("--json", action="store_true", help="one JSON object per photo")
    match.add_argument("--draw", metavar="OUT.png",
                       help="save each face beside its best match's photo")
    match.add_argument("--language", default="en", metavar="LANG",
                       help="language of the names and Wikipedia links shown, as "
                       "Telegram's language_code, e.g. ru or pt-br (default en)")
    args = parser.parse_args(argv)
    if args.top is not None and args.top < 1:
        parser.error("--top must be at least 1")
    return _match(args)


if __name__ == "__main__":
    sys.exit(cli())
