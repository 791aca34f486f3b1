"""Requests and values checked against the Telegram Bot API spec (`api.json` beside this).

Pure functions over the spec: `check_request` (is this a call the method accepts, and
what do its parameters mean) and `check_value` (does a value have a type's shape). The
spec's types are Integer, Float, Boolean, String, InputFile, arrays ("Array of X"),
alternatives ("Integer or String") and objects; a union type such as `MessageOrigin`
is any one of its subtypes, told apart by the field each one has as a constant
("Type of the message origin, always "user"").

Telegram reads a call's parameters from the query string, a form, a multipart body or a
JSON object, and in each it takes numbers and booleans written as text and objects
serialised as JSON text. Parameters are therefore decoded by their declared type, never
by how they look: a message text "[1, 2]" stays a text. Fields the spec does not have
are ignored, as Telegram ignores them, and reported in `unknown`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).with_name("api.json")
PRIMITIVES = frozenset({"Integer", "Float", "Boolean", "String", "InputFile"})
ARRAY = "Array of "
ATTACH = "attach://"
_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_CONSTANT = re.compile(r'\balways "([^"]+)"')


@dataclass(frozen=True)
class Field:
    name: str
    types: tuple[str, ...]  # alternatives, each a primitive, an object or "Array of ..."
    required: bool
    description: str = ""

    @property
    def type_name(self) -> str:
        return " or ".join(self.types)

    @property
    def constant(self) -> str | None:
        """The value a String field always has (a union member's discriminator)."""
        if self.types != ("String",):
            return None
        found = _CONSTANT.search(self.description)
        return found.group(1) if found else None


@dataclass(frozen=True)
class ObjectType:
    name: str
    fields: tuple[Field, ...] = ()
    subtypes: tuple[str, ...] = ()

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Method:
    name: str
    fields: tuple[Field, ...] = dataclasses.field(repr=False)
    returns: tuple[str, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Spec:
    version: str
    methods: Mapping[str, Method]
    types: Mapping[str, ObjectType]

    def method(self, name: str) -> Method | None:
        """The method called `name`; Telegram matches method names in any case."""
        return next((m for m in self.methods.values() if m.name.lower() == name.lower()),
                    None)


def parse_spec(data: Mapping[str, Any]) -> Spec:
    """A `Spec` from api.json's structure."""
    def fields(entry: Mapping[str, Any]) -> tuple[Field, ...]:
        return tuple(Field(f["name"], tuple(f["types"]), bool(f["required"]),
                           f.get("description", "")) for f in entry.get("fields", ()))

    methods = {name: Method(name, fields(entry), tuple(entry.get("returns", ())))
               for name, entry in data["methods"].items()}
    types = {name: ObjectType(name, fields(entry), tuple(entry.get("subtypes", ())))
             for name, entry in data["types"].items()}
    return Spec(str(data.get("version", "")), methods, types)


@functools.cache
def load_spec(path: Path = SPEC_FILE) -> Spec:
    return parse_spec(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class Findings:
    """What a check found: problems (Telegram would refuse) and unknown fields (ignored)."""

    problems: list[str] = dataclasses.field(default_factory=list)
    unknown: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Request:
    """A call as the method reads it: parameters decoded by their declared types
    (uploaded files as bytes), and what was wrong with it."""

    method: Method
    params: dict[str, Any]
    problems: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # paths of fields the spec lacks: "x", "reply_parameters.y"

    @property
    def error(self) -> str | None:
        """Telegram's description of the first problem, or None for a good request."""
        return f"Bad Request: {self.problems[0]}" if self.problems else None


def check_request(spec: Spec, method: Method, params: Mapping[str, Any],
                  files: Mapping[str, bytes] | None = None) -> Request:
    """Check one call of `method`: every required field present, every known field of its
    declared type (objects and arrays may come as JSON text, numbers and booleans as
    text); `files` are the multipart uploads, by part name."""
    files = dict(files or {})
    findings = Findings()
    decoded: dict[str, Any] = {}
    attached = set(_attachments(params))
    for name, value in params.items():
        if value is None:  # JSON null: as if absent
            continue
        declared = method.field(name)
        if declared is None:
            findings.unknown.append(name)
            continue
        decoded[name] = _conform(spec, declared.types, _resolve(value, files), name,
                                 findings, top=True)
    for name, data in files.items():
        declared = method.field(name)
        if name in params or name in attached:
            continue
        if declared is None:
            findings.unknown.append(name)
            continue
        decoded[name] = _conform(spec, declared.types, data, name, findings, top=True)
    missing = [f'parameter "{f.name}" is required' for f in method.fields
               if f.required and decoded.get(f.name) in (None, "")]
    return Request(method, decoded, (*missing, *findings.problems), tuple(findings.unknown))


def check_value(spec: Spec, types: Sequence[str] | str, value: Any,
                path: str = "result") -> Findings:
    """Whether `value` (decoded JSON) has one of `types` ("Message", "Array of Update",
    ("Message", "Boolean")); unknown fields are listed, not refused."""
    findings = Findings()
    _conform(spec, (types,) if isinstance(types, str) else tuple(types), value, path,
             findings, top=False)
    return findings


def _conform(spec: Spec, types: tuple[str, ...], value: Any, path: str,
             findings: Findings, top: bool) -> Any:
    """`value` decoded as the first of `types` it fits; a problem recorded otherwise."""
    tried: list[Findings] = []
    for type_name in types:
        attempt = Findings()
        decoded = _one(spec, type_name, value, path, attempt, top)
        if attempt.ok:
            findings.unknown.extend(attempt.unknown)
            return decoded
        tried.append(attempt)
    if len(tried) == 1:
        findings.problems.extend(tried[0].problems)
        findings.unknown.extend(tried[0].unknown)
    else:
        findings.problems.append(f'field "{path}" must be of type {" or ".join(types)}')
    return value


def _one(spec: Spec, type_name: str, value: Any, path: str, findings: Findings,
         top: bool) -> Any:
    if type_name.startswith(ARRAY):
        if top and isinstance(value, str):
            value = _json(value, path, findings)
            if not findings.ok:
                return value
        if not isinstance(value, list):
            findings.problems.append(f'field "{path}" must be of type {type_name}')
            return value
        item = type_name[len(ARRAY):]
        return [_conform(spec, (item,), element, f"{path}[{index}]", findings, top=False)
                for index, element in enumerate(value)]
    if type_name in PRIMITIVES:
        ok, primitive = _primitive(type_name, value)
        if not ok:
            findings.problems.append(f'field "{path}" must be of type {type_name}')
        return primitive
    kind = spec.types.get(type_name)
    if kind is None:
        raise KeyError(f"the spec has no type {type_name!r} (at {path})")
    if top and isinstance(value, str):
        value = _json(value, path, findings)
        if not findings.ok:
            return value
    if kind.subtypes:
        return _union(spec, kind, value, path, findings)
    if not isinstance(value, dict):
        findings.problems.append(f'field "{path}" must be of type {type_name}')
        return value
    decoded: dict[str, Any] = {}
    for name, item in value.items():
        declared = kind.field(name)
        if declared is None:
            findings.unknown.append(f"{path}.{name}")
            decoded[name] = item
            continue
        decoded[name] = _conform(spec, declared.types, item, f"{path}.{name}", findings,
                                 top=False)
        constant = declared.constant
        if constant is not None and item != constant:
            findings.problems.append(f'field "{path}.{name}" must be "{constant}"')
    for declared in kind.fields:
        if declared.required and declared.name not in value:
            findings.problems.append(f'field "{path}.{declared.name}" is required '
                                     f"in {type_name}")
    return decoded


def _union(spec: Spec, kind: ObjectType, value: Any, path: str, findings: Findings) -> Any:
    """One of the union's subtypes; when none fits, the problems of the one whose
    constant field the value names (e.g. "type": "user"), if any."""
    attempts = []
    for subtype in kind.subtypes:
        attempt = Findings()
        decoded = _one(spec, subtype, value, path, attempt, top=False)
        if attempt.ok:
            findings.unknown.extend(attempt.unknown)
            return decoded
        attempts.append((subtype, attempt))
    for subtype, attempt in attempts:
        member = spec.types.get(subtype)  # a member may be "String" or "Array of ..."
        constants = [f for f in member.fields if f.constant is not None] if member else []
        if constants and isinstance(value, dict) \
                and all(value.get(f.name) == f.constant for f in constants):
            findings.problems.extend(attempt.problems)
            return value
    findings.problems.append(f'field "{path}" must be a {kind.name} '
                             f'({", ".join(kind.subtypes)})')
    return value


def _primitive(type_name: str, value: Any) -> tuple[bool, Any]:
    """Whether `value` is a `type_name`, and its decoded value. Numbers and booleans may
    be text, as Telegram reads them."""
    if type_name == "String":
        return isinstance(value, str), value
    if type_name == "InputFile":
        return isinstance(value, bytes), value
    if isinstance(value, str):
        text = value.strip()
        if type_name == "Integer" and _INTEGER.fullmatch(text):
            return True, int(text)
        if type_name == "Float" and _FLOAT.fullmatch(text):
            return True, float(text)
        if type_name == "Boolean" and text in ("true", "false"):
            return True, text == "true"
        return False, value
    if type_name == "Boolean":
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, value
    if type_name == "Integer":
        return isinstance(value, int), value
    return isinstance(value, int | float), value  # Float


def _json(text: str, path: str, findings: Findings) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        findings.problems.append(f"can't parse {path} JSON object")
        return text


def _resolve(value: Any, files: Mapping[str, bytes]) -> Any:
    """An `attach://<name>` reference to an uploaded part, as the part's bytes."""
    if isinstance(value, str) and value.startswith(ATTACH) and value[len(ATTACH):] in files:
        return files[value[len(ATTACH):]]
    return value


def _attachments(value: Any) -> Iterator[str]:
    """The part names `attach://` references point at, anywhere in the parameters
    (media groups reference their files from inside JSON text)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _attachments(item)
    elif isinstance(value, list):
        for item in value:
            yield from _attachments(item)
    elif isinstance(value, str):
        yield from (match.group(1) for match in re.finditer(r'attach://([\w.-]+)', value))
