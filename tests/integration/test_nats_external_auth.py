"""An external NATS server with its own login: user and password, a token, TLS verified against a CA —
given in the environment (``CA_NATS_*``) or as files, as `up --nats URL` takes them."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from bus import Bus, BusError, Credentials, find_nats_server, free_port
from configs import Settings
from tests.helpers import until_sync


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca-actors test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (where / "ca.pem", where / "server.pem", where / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(server_key))
    return paths


def _server(where: Path, config: dict[str, Any]) -> Iterator[str]:
    """A nats-server with `config` (JSON is its configuration format); yields its URL."""
    port = free_port()
    conf, log = where / "server.conf", where / "server.log"
    conf.write_text(json.dumps(config))
    cmd = [find_nats_server(), "-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(where / "js")]
    proc = subprocess.Popen([*cmd, "-l", str(log)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        until_sync(lambda: log.exists() and "Server is ready" in log.read_text(), "nats-server is ready", timeout_s=15)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _certificates(tmp_path)
    users = {"users": [{"user": "svc", "password": "svc-password"}]}
    config = {"tls": {"cert_file": str(cert), "key_file": str(key)}, "authorization": users}
    for url in _server(tmp_path, config):
        yield url, ca


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[str]:
    yield from _server(tmp_path, {"authorization": {"token": "the-token-0123456789"}})


async def test_user_password_and_a_ca_from_the_environment_reach_a_tls_server(tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    env = {"CA_NATS_USER": "svc", "CA_NATS_PASSWORD": "svc-password", "CA_NATS_TLS_CA": str(ca)}
    login = Credentials.from_env(env)
    async with Bus(url, name="tls-client", credentials=login) as bus:
        await bus.flush()
    # The same through the settings `up` reads (the user part of a URL in CA_NATS_URL is taken apart too).
    settings = Settings(nats_url=url.replace("nats://", "nats://svc:svc-password@"), nats_tls_ca=ca)
    assert settings.nats_url == url
    async with Bus(url, name="settings-client", credentials=Credentials.from_env({}, **_login_of(settings))) as bus:
        await bus.flush()


async def test_a_tls_server_is_not_trusted_without_its_ca_nor_entered_with_a_wrong_password(
    tls_server: tuple[str, Path],
) -> None:
    url, ca = tls_server
    untrusted = Credentials(user="svc", password=SecretStr("svc-password"))
    with pytest.raises(BusError):
        await Bus(url, name="no-ca", credentials=untrusted).connect(timeout_s=3)
    wrong = Credentials.from_env({"CA_NATS_USER": "svc", "CA_NATS_PASSWORD": "guess", "CA_NATS_TLS_CA": str(ca)})
    with pytest.raises(BusError, match="refused the credentials"):
        await Bus(url, name="guesser", credentials=wrong).connect(timeout_s=5)


async def test_a_token_from_the_environment_logs_in(token_server: str) -> None:
    async with Bus(
        token_server, name="token", credentials=Credentials.from_env({"CA_NATS_TOKEN": "the-token-0123456789"})
    ) as bus:
        await bus.flush()
    with pytest.raises(BusError, match="refused the credentials"):
        await Bus(token_server, name="anonymous").connect(timeout_s=5)


def _login_of(settings: Settings) -> dict[str, Any]:
    return {
        "user": settings.nats_user,
        "password": settings.nats_password,
        "token": settings.nats_token,
        "tls_ca": settings.nats_tls_ca,
    }
