"""Pure helpers shared by the backends: status, error translation, URL parsing, keyword matching."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from store._errors import StoreError

# Schema names, table prefixes and key prefixes are spliced into SQL or key patterns: letters, digits, `_` only.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class StoreStatus(StrEnum):
    """The life cycle of a store object."""

    OPEN = "open"
    CLOSED = "closed"


def check_name(name: str, *, backend: str, what: str) -> str:
    """Return `name` if it is a safe identifier (a schema, table prefix or key prefix).

    Raises:
        StoreError: The name holds characters other than letters, digits and ``_``, or starts with a digit.
    """
    if not _NAME.fullmatch(name):
        raise StoreError(
            f"{what} {name!r} must be 1-63 letters, digits or '_' and not start with a digit",
            backend=backend,
            operation="parse URL",
        )
    return name


def pop_query(url: str, key: str) -> tuple[str, str | None]:
    """Remove query parameter `key` from `url`; return the URL without it and the value (last one wins)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    value = next((v for k, v in reversed(pairs) if k == key), None)
    rest = urlencode([(k, v) for k, v in pairs if k != key])
    return urlunsplit(parts._replace(query=rest)), value


def redact(url: str) -> str:
    """``host:port/path`` of a server URL: what an error message may show (no user, no password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path}"


def query_words(query: str) -> list[str]:
    """The lower-cased whitespace-separated words of a keyword query, without duplicates."""
    return list(dict.fromkeys(query.lower().split()))


def matches_all(content: str, words: list[str]) -> bool:
    """Whether every (lower-cased) word occurs in `content`, ignoring case."""
    text = content.lower()
    return all(word in text for word in words)


def escape_like(word: str) -> str:
    """`word` with the LIKE wildcards ``%`` and ``_`` (and the escape ``\\`` itself) taken literally."""
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@asynccontextmanager
async def translate(
    errors: tuple[type[BaseException], ...], *, backend: str, operation: str, target: str
) -> AsyncIterator[None]:
    """Turn a driver exception (one of `errors`, or a timeout) into a :class:`StoreError`.

    Cancellation passes through untouched; a ``StoreError`` raised inside passes through too.
    """
    caught: tuple[type[BaseException], ...] = (*errors, OSError, TimeoutError)
    try:
        yield
    except StoreError:
        raise
    except caught as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise StoreError(detail, backend=backend, operation=operation, target=target) from exc


def closed_error(*, backend: str, operation: str, target: str) -> StoreError:
    """The error for an operation on a closed store."""
    return StoreError("the store is closed", backend=backend, operation=operation, target=target)


def check_limit(limit: int) -> int:
    """Return `limit` if it is not negative.

    Raises:
        ValueError: `limit` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return limit


def check_ttl(ttl_s: float | None) -> float | None:
    """Return `ttl_s` if it is ``None`` (forever) or positive.

    Raises:
        ValueError: `ttl_s` is zero or negative.
    """
    if ttl_s is not None and ttl_s <= 0:
        raise ValueError(f"ttl_s must be > 0 (or None for no expiry), got {ttl_s}")
    return ttl_s
