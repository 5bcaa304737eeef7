"""Key paths (`nodes[1].outputs[0]`) and the translation of pydantic errors into them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from configs._issues import Severity

KeyPath = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """Render a key path as `nodes[1].outputs[0]` / `state.fields.profile.type`.

    Args:
        path: Mapping keys (str) and list indexes (int), outermost first.

    Returns:
        The dotted path; "" for the top level.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def data_path(loc: Sequence[str | int], data: Any, *, missing: bool = False) -> KeyPath:
    """Map a pydantic error `loc` onto the keys that exist in the validated data.

    Pydantic adds union member tags (`'str'`, `'list[str]'`) to locs; they match no key and are
    dropped. A missing key is kept as the last element when `missing` is true.

    Args:
        loc: The error's `loc`.
        data: The raw data that was validated.
        missing: The error is about a missing key.

    Returns:
        The key path inside `data`.
    """
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        in_mapping = isinstance(current, Mapping) and part in current
        if in_mapping or (isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)):
            path.append(part)
            current = current[part]
        elif missing and index == len(loc) - 1 and isinstance(current, Mapping):
            path.append(part)
    return tuple(path)


def error_messages(exc: ValidationError, data: Any) -> list[tuple[KeyPath, str]]:
    """Turn a pydantic ValidationError into (key path, message) pairs, one per path.

    Errors of several union members at the same path are merged into one message.

    Args:
        exc: The validation error.
        data: The data that was validated.

    Returns:
        Pairs in the order pydantic reported them.
    """
    merged: dict[KeyPath, list[str]] = {}
    for error in exc.errors(include_url=False):
        is_missing = error["type"] == "missing"
        path = data_path(error["loc"], data, missing=is_missing)
        message = describe_error(error["type"], error["msg"], error.get("input"), path)
        messages = merged.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    return [(path, "; or ".join(messages)) for path, messages in merged.items()]


def describe_error(kind: str, msg: str, value: Any, path: KeyPath) -> str:
    """Describe one pydantic error in words that say what would be valid.

    Args:
        kind: The pydantic error type (`missing`, `int_parsing`, ...).
        msg: Pydantic's message.
        value: The offending input.
        path: Where it is.

    Returns:
        A one-line message.
    """
    if kind == "missing":
        return f"missing required key {path[-1]!r}" if path else "missing required value"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{msg}, got {short_repr(value)}"


def short_repr(value: Any, limit: int = 60) -> str:
    """Return `repr(value)` cut to `limit` characters.

    Args:
        value: Any value.
        limit: Maximum length.

    Returns:
        The (possibly shortened) repr.
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """A problem found by validation, located by key path (the loader adds line and column)."""

    path: KeyPath
    message: str
    suggestion: str | None = None
    severity: Severity = "error"
    # Index into the string value at `path` (a prompt placeholder), to point at the exact column.
    offset: int | None = None
