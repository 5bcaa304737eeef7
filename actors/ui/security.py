"""Who may use the dashboard: a token off loopback, CSRF tokens on every state-changing request.

Bound to a loopback address the dashboard needs no token (only this machine reaches it). Bound to
any other address it refuses to start without one: ``CA_UI_TOKEN``, or one generated and printed once.
The token is checked on every request, SSE included: a ``ca_ui_token`` cookie (set by visiting any
page with ``?token=...`` once), or ``Authorization: Bearer ...``. Every POST carries a CSRF token (a
form field or the ``X-CSRF-Token`` header htmx sends) derived from a secret of this process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

COOKIE = "ca_ui_token"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or ``localhost``) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Guard:
    """The token (None: none needed) and the CSRF secret of one dashboard process."""

    token: str | None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @classmethod
    def for_host(cls, host: str, token: str | None) -> tuple[Guard, bool]:
        """The guard for a dashboard bound to `host`, and whether its token was generated here (print it).

        A token given is always required; off loopback one is generated when none is given.
        """
        if token:
            return cls(token), False
        if is_loopback(host):
            return cls(None), False
        return cls(secrets.token_urlsafe(24)), True

    def allows(self, presented: str | None) -> bool:
        """Whether a request presenting `presented` (cookie, bearer or query token) may pass."""
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    @property
    def csrf(self) -> str:
        """The CSRF token every form and htmx request of this process carries."""
        return hmac.new(self.secret, b"ca-ui-csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())
