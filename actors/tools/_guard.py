"""The connecting half of ``_hosts``: an httpx transport whose connections go only where the policy allows.

httpx takes no network backend of its own, so the transport's httpcore pool is rebuilt with one
(``GuardedBackend``); the rest of httpx (requests, redirects, TLS, exceptions) is untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from ._base import ToolContext, ToolError
from ._hosts import named_exactly, non_public, resolve


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving each host once and connecting only to addresses it may reach.

    TLS still verifies the certificate against the host name (httpcore passes it as ``server_hostname``).
    """

    def __init__(self, ctx: ToolContext, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._ctx = ctx
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface passes the connect timeout
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        if not named_exactly(host, port, self._ctx):
            for address in addresses:
                kind = non_public(address)
                if kind:
                    raise ToolError(
                        f"host {host!r} resolves to {address}, a {kind} address; only a host named exactly in the "
                        f"allowed hosts (not through a wildcard) may reach such addresses"
                    )
        error: Exception = httpcore.ConnectError(f"{host!r} has no address")
        for address in addresses:  # the checked addresses themselves: the name is not resolved again
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ToolError("the web tools do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, connecting through ``GuardedBackend`` (no environment proxies, certificates verified)."""

    def __init__(self, ctx: ToolContext) -> None:
        super().__init__(trust_env=False)
        # The one private attribute touched: AsyncHTTPTransport has no parameter for httpcore's network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=GuardedBackend(ctx)
        )
