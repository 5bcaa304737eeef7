"""The one redactor of ca-actors: secrets never leave in traces, logs, events or tool results.

Three things are masked with ``[REDACTED]``:

- values under secret-looking names (``secret_key``): mapping keys, environment variable names and
  ``name=value`` / ``Name: value`` assignments inside text;
- values that have the format of a credential whatever their name (``_SECRET_TEXT``): provider API keys,
  GitHub / Slack / AWS / Google tokens, JWTs, PEM private keys, ``Bearer`` header values, the password
  (or the key used as user name) of a URL;
- the values of the process's secret environment variables, wherever they appear.

Applied to every run event (`actors.runtime.events.redact_event`: tool arguments and results, LLM
messages and answers, errors, log fields in full; a run's inputs, state and outputs by value only),
every log line (`actors.runtime.logs`) and every trace (`actors.observer.mlflow_sink`).

Names are split into parts on ``_``, ``-``, ``.``, spaces and camelCase. A *strong* word is a secret
wherever it stands, also glued to a prefix (``MYSQL_PWD``, ``githubToken``, ``DBPASSWORD``); a *weak*
word only as the last part or the whole name (``DB_PASS``, ``X-Auth``, ``session``), so that
``key_points``, ``pass_rate`` or ``SESSION_TIMEOUT`` stay visible.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

MASK = "[REDACTED]"

# A secret wherever the word is one part of the name, or the end of a part (`DBPASSWORD`).
_STRONG = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "secrets",
    "token",
    "apikey",
    "credential",
    "credentials",
    "jwt",
    "dsn",
    "cookie",
    "cookies",
    "authorization",
    "privatekey",
)
_STRONG_WORDS = frozenset(_STRONG)
# A secret when it is the last part (or the whole name): the words are too common elsewhere.
_WEAK_WORDS = frozenset({"key", "pass", "pat", "session", "auth", "sk", "otp"})
# Two parts that together make a name secret wherever they stand (`AWS_ACCESS_KEY_ID`).
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("signing", "key"), ("client", "key")}
)
# Parts glued into one word that still make it secret (`AUTHTOKEN`, `MYSQLPWD`); short words (`pat`, `key`)
# are left out on purpose: `path`, `monkey`, `tokenizers` must not match.
_GLUED_SUFFIX = re.compile(rf"({'|'.join(w for w in _STRONG if len(w) >= 5)})$|(pwd|jwt|dsn)$")
# Secret-looking environment variables whose values are not secrets (a path, a port, a user name...), and the
# shell's own PWD / OLDPWD (the working directory).
_PUBLIC_ENV = re.compile(
    r"((^|_)(PATH|DIR|FILE|HOST|PORT|USER|USERNAME|NAME|MODEL|REGION|ENV|URL_BASE|ID_FILE|LENGTH|TTL|TIMEOUT)$)"
    r"|^(OLD)?PWD$"
)
_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_TEXT = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)"  # PEM private keys
    r"|\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"  # JWTs (header.payload.signature)
    r"|\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe secret / restricted keys (not pk_: public)
    r"|\bsk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style keys
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bAIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|\bxox[abeprs]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub fine-grained tokens
    r"|\bglpat-[A-Za-z0-9_\-]{20,}"  # GitLab personal access tokens
    r"|\bhf_[A-Za-z0-9]{30,}"  # Hugging Face tokens
    r"|\bnpm_[A-Za-z0-9]{30,}"  # npm tokens
    r"|\b\d{8,10}:[A-Za-z0-9_\-]{35}\b"  # Telegram bot tokens
    # Authorization header values; the look-ahead (a digit or a symbol) keeps prose ("basic principles") visible.
    r"|(?i:\b(?:bearer|basic)\s+)(?=[A-Za-z0-9._~+/\-]*[0-9._~+/\-=])[A-Za-z0-9._~+/\-]{8,}=*"
)
# The password of `scheme://user:password@host`, and a long user name that is a key (`https://<key>@sentry.io`).
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]*):([^/\s@]+)@")
_URL_KEY_USER = re.compile(r"(?<=://)[A-Za-z0-9_\-]{16,}(?=@)")
# `name=value`, `name: value`, `"name": "value"` inside free text.
_ASSIGNMENT = re.compile(  # possessive and anchored at a word start: linear time on long texts
    r"(?<![A-Za-z0-9_.\-])(?P<name>[A-Za-z][A-Za-z0-9_.\-]*+)(?P<sep>[\"']?\s*[:=]\s*)"
    r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&'\"(){}\[\]<>]+)"
)


def _parts(name: str) -> list[str]:
    return [p.lower() for p in _PARTS.findall(name)]


def secret_key(key: str) -> bool:
    """Whether a name (mapping key, header, environment variable) names a secret.

    Args:
        key: The name, in any case and separator style (``DB_PASS``, ``accessToken``, ``X-Auth``).

    Returns:
        True for names such as ``MYSQL_PWD``, ``SENTRY_DSN``, ``JWT``, ``GH_PAT``, ``Cookie``, ``session``,
        ``api_key``; False for ``PATH``, ``KEYBOARD_LAYOUT``, ``TOKENIZERS_PARALLELISM``, ``key_points``.
    """
    parts = _parts(key)
    if not parts:
        return False
    if any(p in _STRONG_WORDS or _GLUED_SUFFIX.search(p) for p in parts):
        return True
    if parts[-1] in _WEAK_WORDS:
        return True
    return any(pair in _SECRET_PAIRS for pair in pairwise(parts))


def secret_env_name(name: str) -> bool:
    """Whether an environment variable holds a secret: a secret name that is not a path, host, port, ..."""
    return secret_key(name) and not _PUBLIC_ENV.search(name.upper())


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (long enough to be worth hiding), and the
    passwords of URLs in any variable; longest first, so a value is masked before any part of it."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if secret_env_name(k) and len(v) >= 8}
    values |= {m.group(2) for v in env.values() for m in _URL_PASSWORD.finditer(v) if len(m.group(2)) >= 4}
    return sorted(values, key=len, reverse=True)


def _mask_assignment(match: re.Match[str]) -> str:
    name = match.group("name")
    parts = _parts(name)
    # In free text a lone weak word ("Pass: 3 of 4") is prose, not a credential.
    strong = any(p in _STRONG_WORDS or _GLUED_SUFFIX.search(p) for p in parts) or len(parts) > 1
    if strong and secret_key(name) and match.group("value") != MASK:
        return f"{name}{match.group('sep')}{MASK}"
    return match.group(0)


def redact_text(text: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """Mask credential formats, URL passwords, secret assignments and the ``known`` values in a text."""
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _SECRET_TEXT.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    text = _URL_KEY_USER.sub(MASK, text)
    return _ASSIGNMENT.sub(_mask_assignment, text)


def redact_env(name: str, value: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """The value of environment variable ``name`` as it may be shown: ``MASK`` for a secret name, else the value
    with credential formats, URL passwords and the ``known`` secrets (``secret_values``) masked."""
    return MASK if secret_env_name(name) else redact_text(value, known)


class Redactor:
    """Masks secrets in JSON-like values (dicts, lists, strings); other values pass through.

    Args:
        extra_values: Literal secrets to mask besides those of the environment.
        environ: The environment whose secret values are masked (default ``os.environ``).
    """

    def __init__(self, extra_values: list[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._values = sorted({*secret_values(environ), *(extra_values or [])}, key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._under(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self._text(value)
        return value

    def values(self, value: Any) -> Any:
        """Mask secret *values* only (credential formats, the environment's secrets, ``name=value`` in text),
        leaving every key and the JSON inside strings as they are: for a run's own data (inputs, state,
        outputs), whose field names are the flow's and whose shape the reader relies on."""
        if isinstance(value, dict):
            return {k: self.values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.values(v) for v in value]
        if isinstance(value, str):
            return redact_text(value, self._values)
        return value

    def _under(self, key: Any, value: Any) -> Any:
        # A flag or an empty value under a secret name says nothing secret (`"pass": true` of a gate).
        if isinstance(key, str) and secret_key(key) and not (value is None or isinstance(value, bool)):
            return MASK
        return self(value)

    def _text(self, text: str) -> str:
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and len(stripped) > 1:
            try:
                parsed = json.loads(stripped)
            except (ValueError, RecursionError):
                pass
            else:  # JSON held in a string (a tool result in a message): mask by key too
                return json.dumps(self(parsed), ensure_ascii=False)
        return redact_text(text, self._values)
