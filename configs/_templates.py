"""Prompt templates: `{state.a.b}`, bare `{a.b}`, `{item}`; `{{` and `}}` are literal braces.

A bare `{x}` means a node input or runtime name (`item`, `index`, `memory`) when one is given,
else `{state.x}`. Values render as text: strings as they are, None as "", anything else as
one-line JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from configs.errors import CaActorsError

RUNTIME_NAMES: tuple[str, ...] = ("item", "index", "memory")
_PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


class TemplateSyntaxError(CaActorsError, ValueError):
    """A template is malformed; `offset` is the index of the offending character."""

    def __init__(self, message: str, offset: int) -> None:
        self.message = message
        self.offset = offset
        super().__init__(f"{message} (at offset {offset})")


class TemplateError(CaActorsError, KeyError):
    """A placeholder names a path that the state (or the node's inputs) does not have."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = path
        self.reason = reason
        super().__init__(path)

    def __str__(self) -> str:
        detail = f": {self.reason}" if self.reason else ""
        return f"template placeholder {{{self.path}}} cannot be resolved{detail}"


@dataclass(frozen=True)
class Placeholder:
    """One `{...}` of a template: its path without a leading `state`, and where it starts."""

    path: tuple[str, ...]
    offset: int
    explicit_state: bool

    @property
    def text(self) -> str:
        """The placeholder as written, without braces."""
        return ".".join(("state", *self.path) if self.explicit_state else self.path)


def placeholders(template: str) -> list[Placeholder]:
    """Return the placeholders of a template, in order.

    Args:
        template: A prompt template.

    Returns:
        One Placeholder per `{...}` (escaped `{{`/`}}` excluded).

    Raises:
        TemplateSyntaxError: Unbalanced braces, an empty or malformed placeholder, or a format
            spec / conversion (`{x:>3}`, `{x!r}`), with the offset of the problem.
    """
    return [part for part in _parse(template) if isinstance(part, Placeholder)]


@functools.lru_cache(maxsize=512)
def _parse(template: str) -> tuple[str | Placeholder, ...]:
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char in "{}" and template[i + 1 : i + 2] == char:
            literal.append(char)
            i += 2
            continue
        if char == "}":
            raise TemplateSyntaxError("single '}' (write '}}' for a literal brace)", i)
        if char != "{":
            literal.append(char)
            i += 1
            continue
        end = template.find("}", i + 1)
        nested = template.find("{", i + 1)
        if end < 0 or 0 <= nested < end:
            raise TemplateSyntaxError("unclosed '{' (write '{{' for a literal brace)", i)
        parts.append("".join(literal))
        literal = []
        parts.append(_placeholder(template[i + 1 : end], i))
        i = end + 1
    parts.append("".join(literal))
    return tuple(part for part in parts if part != "")


def _placeholder(inner: str, offset: int) -> Placeholder:
    if any(mark in inner for mark in "!:") and _PLACEHOLDER.fullmatch(re.split(r"[!:]", inner)[0]):
        raise TemplateSyntaxError(
            f"format specs and conversions are not supported in {{{inner}}}; write {{{re.split(r'[!:]', inner)[0]}}}",
            offset,
        )
    if not _PLACEHOLDER.fullmatch(inner):
        raise TemplateSyntaxError(
            f"invalid placeholder {{{inner}}}: use {{state.field}}, {{field.sub}} or {{name}}; "
            "write '{{' and '}}' for literal braces",
            offset,
        )
    segments = tuple(inner.split("."))
    if segments[0] == "state":
        if len(segments) == 1:
            raise TemplateSyntaxError("{state} needs a field name, e.g. {state.topic}", offset)
        return Placeholder(segments[1:], offset, explicit_state=True)
    return Placeholder(segments, offset, explicit_state=False)


def render(template: str, state: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """Fill a template's placeholders from the state and from node inputs / runtime names.

    Args:
        template: A prompt template.
        state: The run's state.
        extra: Resolved node inputs and runtime names (`item`, `index`, `memory`); a bare `{x}`
            looks here first, then in the state.

    Returns:
        The rendered text.

    Raises:
        TemplateSyntaxError: The template is malformed.
        TemplateError: A placeholder's path does not exist.
    """
    out: list[str] = []
    for part in _parse(template):
        if isinstance(part, str):
            out.append(part)
            continue
        if not part.explicit_state and extra is not None and part.path[0] in extra:
            value = _walk(extra[part.path[0]], part.path[1:], part.text)
        else:
            value = _walk(state, part.path, part.text)
        try:
            out.append(to_text(value))
        except (ValueError, RecursionError) as exc:  # a circular or absurdly deep value has no JSON text
            raise TemplateError(part.text, f"its value cannot be written as JSON ({type(exc).__name__})") from None
    return "".join(out)


def is_template(text: str) -> bool:
    """True when a node input is a template (`"{x}"`, `"{state.a} and {b}"`) rather than a bare path."""
    return "{" in text or "}" in text


def single_placeholder(template: str) -> Placeholder | None:
    """The placeholder of a template that is exactly one placeholder (`"{x.y}"`), else None."""
    try:
        parts = _parse(template)
    except TemplateSyntaxError:
        return None
    return parts[0] if len(parts) == 1 and isinstance(parts[0], Placeholder) else None


def input_value(target: str, state: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Any:
    """The value of a node input: a bare path (`a.b`, `state.a.b`) or a template.

    A template that is exactly one placeholder keeps the value's type (a list stays a list); any
    other template renders to text. Bare names look in `extra` (runtime names) first, as prompts do.

    Raises:
        TemplateSyntaxError: The template is malformed.
        TemplateError: A path does not exist.
    """
    if not is_template(target):
        return resolve_path(state, target)
    only = single_placeholder(target)
    if only is None:
        return render(target, state, extra)
    if not only.explicit_state and extra is not None and only.path[0] in extra:
        return _walk(extra[only.path[0]], only.path[1:], only.text)
    return _walk(state, only.path, only.text)


def to_text(value: Any) -> str:
    """Render one value for a prompt: str as is, None as "", anything else as one-line JSON.

    Args:
        value: A state value.

    Returns:
        Its text.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def resolve_path(state: Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted path (`state.a.b` or `a.b`; list items by index, `items.0`).

    Args:
        state: The run's state.
        path: The path, with or without a leading `state.`.

    Returns:
        The value.

    Raises:
        TemplateError: The path does not exist.
    """
    segments = path.split(".")
    if segments[0] == "state":
        segments = segments[1:]
    return _walk(state, segments, path)


def _walk(value: Any, segments: Sequence[str], text: str) -> Any:
    for depth, segment in enumerate(segments):
        where = ".".join(segments[: depth + 1])
        if isinstance(value, Mapping):
            if segment not in value:
                raise TemplateError(text, f"no key {segment!r} at {where}")
            value = value[segment]
        elif isinstance(value, list | tuple):
            if not segment.isdigit() or int(segment) >= len(value):
                raise TemplateError(text, f"no index {segment!r} in a list of {len(value)} at {where}")
            value = value[int(segment)]
        else:
            raise TemplateError(text, f"{type(value).__name__} value has no key {segment!r} at {where}")
    return value
