"""Secrets never leave in traces: values under secret-looking keys, known key formats, passwords in URLs,
and the values of secret environment variables are replaced by ``[REDACTED]`` (also inside JSON text)."""

from __future__ import annotations

import json
import os
import re
from itertools import pairwise
from typing import Any

MASK = "[REDACTED]"
# Words that make a key secret when they are one of its parts (`api_key`, `accessToken`, `X-Api-Key`).
_SECRET_WORDS = frozenset(
    {"secret", "password", "passwd", "pwd", "token", "apikey", "authorization", "credential", "credentials"}
)
# Two parts that together make a key secret (`api_key`, `private-key`, `AWS_SECRET_ACCESS_KEY`).
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")})
# Secret-looking environment variables whose values are not secrets.
_PUBLIC_ENV = re.compile(r"(^|_)(PATH|DIR|FILE|HOST|PORT|USER|NAME|MODEL|REGION|ENV)$")
_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_TEXT = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|xox[abpr]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|\d{8,10}:[A-Za-z0-9_\-]{35}"  # Telegram bot tokens
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/\-]{8,}=*)"  # Authorization header values
)
# The password of `scheme://user:password@host`.
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]+):([^/\s@]+)@")


def secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (its parts, split on `_`, `-`, `.` and camelCase)."""
    parts = [p.lower() for p in _PARTS.findall(key)]
    if any(p in _SECRET_WORDS for p in parts):
        return True
    return any(pair in _SECRET_PAIRS for pair in pairwise(parts))


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (long enough to be worth hiding)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if secret_key(k) and not _PUBLIC_ENV.search(k.upper()) and len(v) >= 8}
    values |= {m.group(2) for v in env.values() for m in _URL_PASSWORD.finditer(v) if len(m.group(2)) >= 4}
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Masks secrets in JSON-like values (dicts, lists, strings); other values pass through."""

    def __init__(self, extra_values: list[str] | None = None) -> None:
        self._values = [*secret_values(), *(extra_values or [])]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: MASK if isinstance(k, str) and secret_key(k) else self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self._text(value)
        return value

    def _text(self, text: str) -> str:
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and len(stripped) > 1:
            try:
                parsed = json.loads(stripped)
            except ValueError:
                pass
            else:  # JSON held in a string (a tool result in a message): mask by key too
                return json.dumps(self(parsed), ensure_ascii=False)
        for secret in self._values:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
        return _SECRET_TEXT.sub(MASK, text)
