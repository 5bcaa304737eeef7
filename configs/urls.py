"""Service URLs as they may be shown: a password inside one is masked wherever it is printed."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """`url` with the password (or a lone token) of its user part replaced by ``***``.

    ``nats://svc:s3cret@host:4222`` → ``nats://svc:***@host:4222``; ``redis://:pw@h/0`` → ``redis://:***@h/0``;
    a URL without credentials is returned as it is. Only the first URL of a comma-separated list of
    servers would be parsed, so each is masked on its own.
    """
    if "," in url:
        return ",".join(mask_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    # nats://TOKEN@host: a token alone is a secret too.
    shown = f"{user}:{MASK}" if sep else (MASK if parts.scheme.startswith("nats") or parts.scheme == "tls" else user)
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def has_password(url: str) -> bool:
    """Whether `url` carries a password (or a NATS token) in its user part."""
    return mask_url(url) != url


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` without its user part, and that part: ``(url, user, password)``; a lone NATS token comes
    back as the password of no user. Comma-separated server lists share one user part (the first found)."""
    user: str | None = None
    password: str | None = None
    bare: list[str] = []
    for part in url.split(","):
        try:
            parts = urlsplit(part)
        except ValueError:
            bare.append(part)
            continue
        if "@" not in parts.netloc:
            bare.append(part)
            continue
        userinfo, _, host = parts.netloc.rpartition("@")
        name, sep, secret = userinfo.partition(":")
        if user is None and password is None:
            user, password = (unquote(name) or None, unquote(secret)) if sep else (None, unquote(name))
        bare.append(urlunsplit(parts._replace(netloc=host)))
    return ",".join(bare), user, password
