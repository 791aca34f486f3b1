"""Hypothesis strategies for Telegram's objects, built from the Bot API spec.

`updates()` draws an `Update` of any of its kinds (message, edited_message,
callback_query, message_reaction, business_message, chat_member, ...: exactly one, as
Telegram sends them), every object in it built from its type in `api.json`, recursively:
required fields always, optional ones present or absent, values of the field's type,
union types as any of their members. Depth is bounded: below `max_depth` objects carry
only their required fields, arrays are empty and unions take a member that ends the
recursion (RichText is a String or an array of RichText, for one).

Values stay within their types and, where the spec lists them in a field's description,
within the documented values (a chat's type is "private", "group", "supergroup" or
"channel"; a union member's "type" is its constant). `BOT_FOCUS` makes the fields the
bot reads (photos, documents, captions, commands, replies) common rather than rare,
without leaving the spec's types: a command is a text starting with "/" and its
`bot_command` entity, a mention a caption naming the bot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st

from stack.telegram_spec.check import ARRAY, PRIMITIVES, Field, Spec, load_spec

# How many updates the webhook's spec fuzz sends: a few thousand in CI, more with
# LOOKALIKE_LONG_TESTS=1 (tests/reliability_budget.py), or exactly LOOKALIKE_SPEC_EXAMPLES.
CI_EXAMPLES = 3000
LONG_EXAMPLES = 30000
MAX_DEPTH = 3
MAX_OPTIONAL = 3  # optional fields drawn per object, besides the bot's own
BOT = "LookalikeTestBot"

# Fields each included half of the time (others are drawn among all optional ones).
BOT_FOCUS: Mapping[str, tuple[str, ...]] = {
    "Message": ("from", "text", "entities", "caption", "caption_entities", "photo",
                "document", "reply_to_message"),
    "User": ("language_code",),
    "Document": ("mime_type", "file_size"),
    "PhotoSize": ("file_size",),
}
_FILE_ID = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
                   min_size=1, max_size=80)
_WIDE_INTEGER = st.integers(-(2**52), 2**52)
_QUOTED = re.compile(r'"([a-z][a-z0-9_]*)"')
_ENUM_HINT = re.compile(r"\b(can be|one of|either|Currently)\b")


def example_count() -> int:
    """The examples per run: LOOKALIKE_SPEC_EXAMPLES if set, else CI or long counts."""
    from tests.reliability_budget import scaled

    explicit = os.environ.get("LOOKALIKE_SPEC_EXAMPLES")
    return int(explicit) if explicit else scaled(CI_EXAMPLES, LONG_EXAMPLES)


def _text(max_size: int = 12) -> st.SearchStrategy[str]:
    # Text Telegram can send: any Unicode scalar value (no lone surrogates).
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def _documented_values(field: Field) -> list[str]:
    """The values a String field's description enumerates ("can be "a", "b" or "c"")."""
    if field.types != ("String",) or not _ENUM_HINT.search(field.description):
        return []
    return list(dict.fromkeys(_QUOTED.findall(field.description)))


def _command_text() -> st.SearchStrategy[str]:
    names = st.sampled_from(["start", "help", "privacy", "lookalike", "unknown", "START"])
    addressee = st.sampled_from(["", f"@{BOT}", f"@{BOT.lower()}", "@OtherBot"])
    rest = st.sampled_from(["", " extra words"])
    return st.builds(lambda n, a, r: f"/{n}{a}{r}", names, addressee, rest)


def _with_command(message: dict[str, Any], text: str, key: str) -> dict[str, Any]:
    """`message` with `text` as its text (or caption) and the entity clients attach."""
    entities = "entities" if key == "text" else "caption_entities"
    length = len(text.split()[0].encode("utf-16-le")) // 2
    return {**message, key: text,
            entities: [{"type": "bot_command", "offset": 0, "length": length}]}


class Strategies:
    """Strategies for the spec's types, made once per (type, depth)."""

    def __init__(self, spec: Spec, max_depth: int = MAX_DEPTH,
                 focus: Mapping[str, tuple[str, ...]] = BOT_FOCUS) -> None:
        self.spec = spec
        self.max_depth = max_depth
        self.focus = focus
        self._made: dict[tuple[str, int], st.SearchStrategy[Any]] = {}
        self.overrides: dict[tuple[str, str], Callable[[], st.SearchStrategy[Any]]] = {
            ("Document", "mime_type"): lambda: st.sampled_from(
                ["image/jpeg", "image/png", "image/webp", "application/pdf", "video/mp4"])
            | _text(),
            ("Message", "caption"): lambda: st.sampled_from(
                [f"@{BOT}", f"who is this @{BOT}?", f"@{BOT.upper()}", f"@{BOT}x",
                 "@SomeoneElse"]) | _text(40),
            ("Message", "text"): lambda: _command_text() | _text(40),
        }

    def of(self, types: tuple[str, ...] | str, depth: int) -> st.SearchStrategy[Any]:
        """A value of one of `types` ("Integer", "Message", "Array of PhotoSize", ...)."""
        alternatives = (types,) if isinstance(types, str) else types
        return st.one_of([self._one(t, depth) for t in alternatives])

    def _one(self, type_name: str, depth: int) -> st.SearchStrategy[Any]:
        if type_name.startswith(ARRAY):
            item = type_name[len(ARRAY):]
            size = 4 if depth < self.max_depth else 0
            return st.lists(self._one(item, depth), max_size=size)
        if type_name in PRIMITIVES:
            return _primitive(type_name)
        key = (type_name, min(depth, self.max_depth))
        if key not in self._made:
            # Deferred: a type may contain itself (Message.reply_to_message).
            self._made[key] = st.deferred(lambda: self._object(type_name, key[1]))
        return self._made[key]

    def _object(self, type_name: str, depth: int) -> st.SearchStrategy[Any]:
        kind = self.spec.types[type_name]
        if kind.subtypes:
            members = list(kind.subtypes)
            if depth >= self.max_depth:  # members that end the recursion, if any
                members = [m for m in members if m in PRIMITIVES] or members
            return st.one_of([self._one(m, depth + 1) for m in members])
        if type_name == "InputFile" or not kind.fields:
            return st.fixed_dictionaries({})
        required = {f.name: self._field(type_name, f, depth) for f in kind.fields
                    if f.required}
        optional = [f for f in kind.fields if not f.required]
        if depth >= self.max_depth:
            return st.fixed_dictionaries(required)
        focus = set(self.focus.get(type_name, ()))
        focused = [f for f in optional if f.name in focus]
        others = [f for f in optional if f.name not in focus]
        strategies = {f.name: self._field(type_name, f, depth) for f in optional}
        base = st.fixed_dictionaries(required)
        some_others = st.lists(st.sampled_from([f.name for f in others]),
                               max_size=MAX_OPTIONAL, unique=True) if others else st.just([])

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            value = draw(base)
            chosen = [f.name for f in focused if draw(st.booleans())] + draw(some_others)
            for name in chosen:
                value[name] = draw(strategies[name])
            return value

        made = build()
        if type_name == "Message":
            made = self._message(made)
        return made

    def _field(self, type_name: str, field: Field, depth: int) -> st.SearchStrategy[Any]:
        override = self.overrides.get((type_name, field.name))
        if override is not None:
            return override()
        if field.constant is not None:
            return st.just(field.constant)
        if field.types == ("String",) and field.name in ("file_id", "file_unique_id"):
            return _FILE_ID  # Telegram's file identifiers: base64url, never empty
        if field.types == ("Integer",) and "Unix time" in field.description:
            return st.integers(0, 2**31 - 1)  # dates: Telegram's are 32-bit, from 1970
        if field.types == ("Integer",) and "significant bits" in field.description:
            return _WIDE_INTEGER  # identifiers "may have more than 32 significant bits"
        documented = _documented_values(field)
        if documented:  # mostly a documented value, sometimes one a later API may add
            return st.integers(0, 3).flatmap(
                lambda pick: _text() if pick == 0 else st.sampled_from(documented))
        return self.of(field.types, depth + 1)

    def _message(self, messages: st.SearchStrategy[dict[str, Any]],
                 ) -> st.SearchStrategy[dict[str, Any]]:
        """Messages, a share of them commands with their entity (text or caption)."""
        commands = _command_text()

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            message = draw(messages)
            if draw(st.integers(0, 3)) == 0:
                key = "caption" if "photo" in message and draw(st.booleans()) else "text"
                message = _with_command(message, draw(commands), key)
            return message

        return build()

    def update(self, kind: str) -> st.SearchStrategy[dict[str, Any]]:
        """An `Update` carrying `kind` ("message", "callback_query", ...)."""
        update = self.spec.types["Update"]
        declared = update.field(kind)
        assert declared is not None, kind
        return st.fixed_dictionaries({
            "update_id": st.integers(1, 2**31 - 1),
            kind: self.of(declared.types, 1)})

    def updates(self) -> st.SearchStrategy[dict[str, Any]]:
        """An `Update` of any kind (at most one optional field, as the spec says); new
        messages, the kind the bot acts on, are about half of them."""
        kinds = update_kinds(self.spec)
        weighted = kinds + ["message"] * (len(kinds) - 1)
        return st.sampled_from(weighted).flatmap(self.update)


def update_kinds(spec: Spec) -> list[str]:
    return [f.name for f in spec.types["Update"].fields if not f.required]


def _primitive(type_name: str) -> st.SearchStrategy[Any]:
    if type_name == "Integer":
        # The Bot API's Integer is 32-bit unless a field says it has more bits.
        return st.integers(-(2**31), 2**31 - 1)
    if type_name == "Float":
        return st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
    if type_name == "Boolean":
        return st.booleans()
    if type_name == "String":
        return _text()
    return st.binary(max_size=16)  # InputFile: never in what Telegram sends


_default: Strategies | None = None


def strategies() -> Strategies:
    """The strategies for the project's spec (made once)."""
    global _default
    if _default is None:
        _default = Strategies(load_spec())
    return _default
