"""Secrets never leave in traces: values under secret-looking keys, known key formats and the values of
secret environment variables are replaced by ``[REDACTED]``."""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "[REDACTED]"
# Whole key names, or their last part: `api_key`, `bot_token`, `X-Api-Key`; not `max_tokens`.
_SECRET_KEY = re.compile(
    r"^(?:.*[_\-.])?(api[_\-]?key|apikey|secret|client[_\-]?secret|password|passwd|token|authorization"
    r"|credentials?|private[_\-]?key|signature)$",
    re.I,
)
_SECRET_TEXT = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|xox[abpr]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|\d{8,10}:[A-Za-z0-9_\-]{35}"  # Telegram bot tokens
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{12,})"
)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (long enough to be worth hiding)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_KEY.search(k) and len(v) >= 8}, key=len, reverse=True)


class Redactor:
    """Masks secrets in JSON-like values (dicts, lists, strings); other values pass through."""

    def __init__(self, extra_values: list[str] | None = None) -> None:
        self._values = [*secret_values(), *(extra_values or [])]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: MASK if isinstance(k, str) and _SECRET_KEY.search(k) else self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, MASK)
            return _SECRET_TEXT.sub(MASK, value)
        return value
