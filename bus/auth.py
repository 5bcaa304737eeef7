"""NATS credentials: how a connection proves who it is, and the embedded server's users.

`Credentials` is what one connection presents (user and password, a token, an nkey seed file or a
``.creds`` file, and a CA to verify the server's TLS certificate); it never comes from a command line.
`AuthFile` is the embedded server's secret: one generated password per `bus.permissions.Role`, kept in
``<data-dir>/nats-auth.json`` (mode 0600) and turned into the server's configuration at each start, so
the permissions always follow the code.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SecretStr

from bus.permissions import ROLES, Role, inbox_prefix
from configs.errors import BusError
from configs.settings import Settings

AUTH_FILE = "nats-auth.json"
SERVER_CONFIG = "server.conf"
_ROLE_NAMES = frozenset(r.value for r in Role)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (0600, also when it existed with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class Credentials(BaseModel):
    """What one NATS connection presents. Empty: no authentication."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    # A ``.creds`` file (JWT and nkey seed, from `nsc`), or an nkey seed file: both need the `nkeys` package.
    creds_file: Path | None = None
    nkey_file: Path | None = None
    # PEM file of the CA that signed the server's certificate: the connection is TLS, verified against it.
    tls_ca: Path | None = None
    # Where this connection's replies arrive; a role's own prefix on a server with `bus.permissions`.
    inbox_prefix: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.user or self.token or self.creds_file or self.nkey_file)

    def for_role(self, role: Role) -> Self:
        """The same credentials, with the inbox prefix a user of `role` may subscribe to."""
        return self.model_copy(update={"inbox_prefix": inbox_prefix(role)})

    def env(self) -> dict[str, str]:
        """These credentials as the ``CA_NATS_*`` environment variables a child process reads back."""
        out: dict[str, str] = {}
        if self.user:
            out["CA_NATS_USER"] = self.user
        if self.password:
            out["CA_NATS_PASSWORD"] = self.password.get_secret_value()
        if self.token:
            out["CA_NATS_TOKEN"] = self.token.get_secret_value()
        for key, path in (("CA_NATS_CREDS", self.creds_file), ("CA_NATS_NKEY", self.nkey_file)):
            if path:
                out[key] = str(path)
        if self.tls_ca:
            out["CA_NATS_TLS_CA"] = str(self.tls_ca)
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read ``CA_NATS_USER``, ``CA_NATS_PASSWORD``, ``CA_NATS_TOKEN``, ``CA_NATS_CREDS``,
        ``CA_NATS_NKEY``, ``CA_NATS_TLS_CA``, then `overrides` that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "user": env.get("CA_NATS_USER") or None,
            "password": env.get("CA_NATS_PASSWORD") or None,
            "token": env.get("CA_NATS_TOKEN") or None,
            "creds_file": env.get("CA_NATS_CREDS") or None,
            "nkey_file": env.get("CA_NATS_NKEY") or None,
            "tls_ca": env.get("CA_NATS_TLS_CA") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect`` for these credentials.

        Raises:
            BusError: a file is missing, or an nkey / creds file without the `nkeys` package.
        """
        opts: dict[str, Any] = {}
        if self.user:
            opts["user"] = self.user
            opts["password"] = self.password.get_secret_value() if self.password else ""
        if self.token:
            opts["token"] = self.token.get_secret_value()
        for what, path, option in (
            (".creds file", self.creds_file, "user_credentials"),
            ("nkey seed file", self.nkey_file, "nkeys_seed"),
        ):
            if path is None:
                continue
            if not path.is_file():
                raise BusError(f"NATS {what} {path} does not exist")
            try:
                import nkeys  # type: ignore[import-not-found, unused-ignore]  # noqa: F401 - nats-py needs it
            except ImportError:
                raise BusError(f"a NATS {what} needs the nkeys package: pip install nkeys") from None
            opts[option] = str(path)
        if self.tls_ca:
            if not self.tls_ca.is_file():
                raise BusError(f"NATS TLS CA file {self.tls_ca} does not exist")
            opts["tls"] = ssl.create_default_context(cafile=str(self.tls_ca))
        if self.inbox_prefix:
            opts["inbox_prefix"] = self.inbox_prefix
        return opts


class AuthFile:
    """The embedded server's users: a generated password per role, in ``<dir>/nats-auth.json`` (0600)."""

    def __init__(self, path: Path, passwords: dict[Role, str]) -> None:
        self.path = path
        self._passwords = passwords

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Self:
        """The data folder's credentials, generated on first use (and for roles added since)."""
        path = data_dir / AUTH_FILE
        passwords: dict[Role, str] = {}
        changed = True
        if path.exists():
            passwords = cls._read(path)
            changed = False
        for role in Role:
            if role not in passwords:
                passwords[role] = secrets.token_urlsafe(32)
                changed = True
        auth = cls(path, passwords)
        if changed:
            auth._write()
        elif path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return auth

    @classmethod
    def load(cls, data_dir: Path) -> Self | None:
        """The data folder's credentials, or None when it has none."""
        path = data_dir / AUTH_FILE
        return cls(path, cls._read(path)) if path.exists() else None

    @classmethod
    def read(cls, path: Path) -> Self:
        """The credentials in the file at `path`.

        Raises:
            BusError: it cannot be read.
        """
        return cls(path, cls._read(path))

    @staticmethod
    def _read(path: Path) -> dict[Role, str]:
        try:
            users = json.loads(path.read_text())["users"]
            return {Role(name): str(password) for name, password in users.items() if name in _ROLE_NAMES}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BusError(f"cannot read the NATS credentials in {path}: {exc}") from exc

    def _write(self) -> None:
        body = {"users": {role.value: pw for role, pw in self._passwords.items()}}
        write_private(self.path, json.dumps(body, indent=2) + "\n")

    def credentials(self, role: Role) -> Credentials:
        """How a connection of `role` logs in."""
        return Credentials(user=role.value, password=SecretStr(self._passwords[role]), inbox_prefix=inbox_prefix(role))

    def server_config(self) -> dict[str, Any]:
        """The ``authorization`` block of nats-server's configuration: one user per role, its grants."""
        users = [
            {"user": role.value, "password": self._passwords[role], "permissions": ROLES[role].permissions()}
            for role in Role
        ]
        return {"authorization": {"users": users}}

    def write_server_config(self, path: Path) -> Path:
        """Write the server's configuration file (0600): nats-server reads JSON as its own format."""
        write_private(path, json.dumps(self.server_config(), indent=2) + "\n")
        return path


def credentials_for(settings: Settings, role: Role) -> Credentials:
    """How a connection of `role` logs in with these settings: the role's own user when the settings
    name the embedded server's users (`Settings.nats_auth_file`), else the ``CA_NATS_*`` credentials."""
    if settings.nats_auth_file is not None:
        auth = AuthFile.read(settings.nats_auth_file)
        return auth.credentials(role).model_copy(update={"tls_ca": settings.nats_tls_ca})
    given = Credentials(
        user=settings.nats_user,
        password=settings.nats_password,
        token=settings.nats_token,
        creds_file=settings.nats_creds,
        nkey_file=settings.nats_nkey,
        tls_ca=settings.nats_tls_ca,
    )
    return given if given.empty else given.for_role(role)
