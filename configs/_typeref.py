"""Type strings of the YAML language (`str`, `list[str]`, `object` + `schema:`) parsed into `TypeRef`s.

Grammar (whitespace tolerant)::

    type   := "str" | "int" | "float" | "bool" | "list" | "dict" | "object"
            | "list[" type "]" | "dict[str," type "]"
    schema := mapping name -> type string | nested schema mapping | {type: ..., schema: ...}

The `schema:` mapping belongs to the `object` inside the type string (`object`, `list[object]`, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from configs._issues import closest
from configs.errors import CaActorsError

Kind = Literal["str", "int", "float", "bool", "list", "dict", "object", "any"]
SCALARS: frozenset[str] = frozenset({"str", "int", "float", "bool"})
NAMES: tuple[str, ...] = ("str", "int", "float", "bool", "list", "dict", "object")
VALID_FORMS = "str, int, float, bool, list, dict, list[T], dict[str, T], object (with a schema: mapping)"
MAX_TYPE_DEPTH = 32
# Keys that make a nested schema entry a field description rather than a nested object schema.
_FIELD_KEYS = frozenset({"type", "schema", "description", "required", "default"})
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\[|\]|,)")


@dataclass(frozen=True)
class TypeRef:
    """A parsed type: a kind, the item type of lists and dicts, the fields of objects."""

    kind: Kind
    item: TypeRef | None = None
    fields: tuple[tuple[str, TypeRef], ...] | None = None

    def field(self, name: str) -> TypeRef | None:
        """Return the type of field `name` of an object with a schema, or None."""
        return dict(self.fields or ()).get(name)

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list[{self.item}]" if self.item else "list"
        if self.kind == "dict":
            return f"dict[str, {self.item}]" if self.item else "dict"
        if self.kind == "object" and self.fields is not None:
            inner = ", ".join(f"{name}: {ref}" for name, ref in self.fields)
            return f"object{{{inner}}}"
        return self.kind


ANY = TypeRef("any")


class TypeStringError(CaActorsError, ValueError):
    """A type string or an object schema is invalid.

    `path` locates the problem inside the `schema:` mapping (empty for the type string itself).
    """

    def __init__(
        self,
        message: str,
        *,
        path: tuple[str, ...] = (),
        suggestion: str | None = None,
        in_schema: bool = False,
    ) -> None:
        self.message = message
        self.path = path
        self.suggestion = suggestion
        self.in_schema = in_schema or bool(path)
        super().__init__(message)


def parse_type(type_str: str, schema: Mapping[str, Any] | None = None) -> TypeRef:
    """Parse a type string, with the `schema:` mapping of its `object`, into a `TypeRef`.

    Args:
        type_str: A type string such as `list[str]` or `object`.
        schema: The nested `schema:` mapping of an `object` type, if any.

    Returns:
        The parsed type (cached: equal inputs give the same object).

    Raises:
        TypeStringError: The type string or the schema is invalid.
    """
    key = json.dumps(schema, default=str) if schema is not None else None
    return _parse_cached(type_str, key)


@lru_cache(maxsize=1024)
def _parse_cached(type_str: str, schema_json: str | None) -> TypeRef:
    schema: Any = json.loads(schema_json) if schema_json is not None else None
    if schema is not None and not isinstance(schema, Mapping):
        raise TypeStringError(f"schema must be a mapping of field name to type, got {_kind_of(schema)}", in_schema=True)
    ref, used = _parse(type_str, schema)
    if schema is not None and not used:
        raise TypeStringError(f"schema is only used with object types, not with {type_str!r}", in_schema=True)
    return ref


def _parse(type_str: str, schema: Mapping[str, Any] | None) -> tuple[TypeRef, bool]:
    if not isinstance(type_str, str):
        raise TypeStringError(f"type must be a string, got {_kind_of(type_str)}; valid types: {VALID_FORMS}")
    tokens = _tokenize(type_str)
    parser = _Parser(type_str, tokens, schema)
    ref = parser.type()
    if parser.pos != len(tokens):
        raise parser.error(f"unexpected {tokens[parser.pos]!r}")
    return ref, parser.schema_used


def _tokenize(type_str: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = type_str.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise TypeStringError(
                f"invalid type {type_str!r}: unexpected {text[pos:].strip()[:1]!r}; valid types: {VALID_FORMS}"
            )
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        raise TypeStringError(f"type is empty; valid types: {VALID_FORMS}")
    return tokens


class _Parser:
    def __init__(self, text: str, tokens: list[str], schema: Mapping[str, Any] | None) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.schema = schema
        self.schema_used = False
        self.depth = 0

    def error(self, detail: str, suggestion: str | None = None) -> TypeStringError:
        shown = self.text if len(self.text) <= 80 else f"{self.text[:77]}..."
        return TypeStringError(f"invalid type {shown!r}: {detail}; valid types: {VALID_FORMS}", suggestion=suggestion)

    def next(self) -> str:
        if self.pos >= len(self.tokens):
            raise self.error("unexpected end")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        got = self.next()
        if got != token:
            raise self.error(f"expected {token!r}, got {got!r}")

    def type(self) -> TypeRef:
        name = self.next()
        if name not in NAMES:
            raise self.error(f"unknown type {name!r}", suggestion=closest(name, NAMES))
        if name in SCALARS:
            return TypeRef(name)  # type: ignore[arg-type]  # name is one of SCALARS
        if name == "object":
            self.schema_used = True
            return TypeRef("object", fields=_schema_fields(self.schema) if self.schema is not None else None)
        has_params = self.pos < len(self.tokens) and self.tokens[self.pos] == "["
        if not has_params:
            return TypeRef("list") if name == "list" else TypeRef("dict")
        self.expect("[")
        self.depth += 1
        if self.depth > MAX_TYPE_DEPTH:  # `list[list[...]]` a thousand deep would overflow every tree walk
            raise self.error(f"nested more than {MAX_TYPE_DEPTH} levels deep")
        if name == "dict":
            key = self.next()
            if key != "str":
                raise self.error(f"dict keys must be str, got {key!r}")
            self.expect(",")
        item = self.type()
        self.expect("]")
        return TypeRef("list", item=item) if name == "list" else TypeRef("dict", item=item)


def _schema_fields(schema: Mapping[str, Any]) -> tuple[tuple[str, TypeRef], ...]:
    fields: list[tuple[str, TypeRef]] = []
    for name, value in schema.items():
        try:
            fields.append((str(name), _schema_entry(value)))
        except TypeStringError as exc:
            raise TypeStringError(exc.message, path=(str(name), *exc.path), suggestion=exc.suggestion) from None
    return tuple(fields)


def _schema_entry(value: Any) -> TypeRef:
    if isinstance(value, str):
        return _parse(value, None)[0]
    if isinstance(value, Mapping):
        if isinstance(value.get("type"), str) and set(value) <= _FIELD_KEYS:
            nested = value.get("schema")
            if nested is not None and not isinstance(nested, Mapping):
                raise TypeStringError(f"schema must be a mapping, got {_kind_of(nested)}", path=("schema",))
            try:
                ref, used = _parse(value["type"], nested)
            except TypeStringError as exc:
                prefix = ("type",) if not exc.path else ("schema",)
                raise TypeStringError(exc.message, path=(*prefix, *exc.path), suggestion=exc.suggestion) from None
            if nested is not None and not used:
                raise TypeStringError("schema is only used with object types", path=("schema",))
            return ref
        return TypeRef("object", fields=_schema_fields(value))
    raise TypeStringError(
        f"expected a type string or a nested schema mapping, got {_kind_of(value)}; valid types: {VALID_FORMS}"
    )


def incompatibility(produced: TypeRef, expected: TypeRef, where: str = "") -> str | None:
    """Explain why a value of type `produced` cannot be stored where `expected` is declared.

    Args:
        produced: The type a node produces.
        expected: The type of the state field that receives it.
        where: Path inside the value, for nested objects (used in the explanation).

    Returns:
        None when compatible (int fits float; untyped lists, dicts and objects fit anything of
        their kind), else a sentence naming the first mismatch.
    """
    at = f"at {where}, " if where else ""
    if produced.kind == "any" or expected.kind == "any":
        return None
    if produced.kind == "int" and expected.kind == "float":
        return None
    if produced.kind == expected.kind and produced.kind in SCALARS:
        return None
    if produced.kind == expected.kind and produced.kind in ("list", "dict"):
        if produced.item is None or expected.item is None:
            return None
        inner = f"{where}[]" if produced.kind == "list" else f"{where}{{}}"
        return incompatibility(produced.item, expected.item, inner)
    if produced.kind == "object" and expected.kind == "object":
        return _object_incompatibility(produced, expected, where)
    if produced.kind == "object" and expected.kind == "dict":
        if produced.fields is None or expected.item is None:
            return None
        for name, ref in produced.fields:
            reason = incompatibility(ref, expected.item, _join(where, name))
            if reason:
                return reason
        return None
    if produced.kind == "dict" and expected.kind == "object" and expected.fields is None:
        return None
    return f"{at}{produced} does not fit {expected}"


def _object_incompatibility(produced: TypeRef, expected: TypeRef, where: str) -> str | None:
    if produced.fields is None or expected.fields is None:
        return None
    have = dict(produced.fields)
    want = dict(expected.fields)
    missing = [name for name in want if name not in have]
    if missing:
        return f"field {_join(where, missing[0])!r} ({want[missing[0]]}) is missing"
    extra = [name for name in have if name not in want]
    if extra:
        hint = closest(extra[0], want)
        also = f"; did you mean {_join(where, hint)!r}?" if hint else ""
        return f"field {_join(where, extra[0])!r} is not in the state schema{also}"
    for name, ref in want.items():
        reason = incompatibility(have[name], ref, _join(where, name))
        if reason:
            return reason
    return None


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
