"""Where the web tools may connect: the allow-list (host names and ports) and the addresses names resolve to.

An allow-list entry is ``host``, ``host:port``, ``host:*``, ``*.example.com`` (any subdomain) or ``*`` (any
host), optionally with ``:port`` too (IPv6 in brackets: ``[::1]:8080``). An entry without a port allows the
default port of the scheme only (80 for http, 443 for https).

A name that resolves to a loopback, private, link-local or otherwise non-public address is refused unless
the host is named exactly in the allow-list (a wildcard is not enough): ``*`` must not reach the cloud's
metadata service at 169.254.169.254 or a database on localhost. The name is resolved once, when the
connection is opened, and the connection goes to the very address that was checked (``GuardedBackend``), so a
DNS answer that changes between a check and the connect (rebinding) cannot slip through. This module is
pure policy; ``_guard`` holds the connecting part (it imports httpcore, so it is imported on first use).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse

from ._base import ToolContext, ToolError

DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _entry(entry: str) -> tuple[str, str | None]:
    """An allow-list entry as (host pattern, port: digits, ``*`` or None for the scheme's default)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, (rest[1:] or None) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, port or None
    return entry, None  # a name, or an IPv6 address without brackets


def _host_matches(pattern: str, host: str) -> bool:
    return pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def _port_matches(allowed: str | None, port: int, scheme: str) -> bool:
    if allowed is None:
        return port == DEFAULT_PORTS[scheme]
    return allowed == "*" or allowed == str(port)


def url_origin(url: str) -> tuple[str, str, int]:
    """The scheme, host (lower-case, IPv6 without brackets) and port (explicit or default) of an http(s) URL.

    Raises:
        ToolError: not http(s), no host, or a port that is not a number from 1 to 65535.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs are allowed, got {url!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ToolError(f"URL has no host: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ToolError(f"URL has an invalid port: {url!r}") from exc
    if port == 0:
        raise ToolError(f"URL has an invalid port: {url!r}")
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme]


def check_host(url: str, ctx: ToolContext) -> str:
    """Refuse URLs that are not http(s) or whose host and port are not allowed.

    Returns:
        The URL's host, lower-case.

    Raises:
        ToolError: naming the host (and port) and how to allow it.
    """
    scheme, host, port = url_origin(url)
    entries = [_entry(e) for e in ctx.allowed_hosts]
    if any(_host_matches(h, host) and _port_matches(p, port, scheme) for h, p in entries):
        return host
    current = ", ".join(sorted(ctx.allowed_hosts)) if ctx.allowed_hosts else "empty, so no host is allowed"
    if any(_host_matches(h, host) for h, _ in entries):
        shown = f"[{host}]" if ":" in host else host
        raise ToolError(
            f"port {port} of host {host!r} is not allowed; an allowed host without a port allows only the default "
            f"port ({DEFAULT_PORTS[scheme]} for {scheme}): add '{shown}:{port}' (currently {current})"
        )
    raise ToolError(f"host {host!r} is not allowed; add it to the tools' allowed hosts (currently {current})")


def named_exactly(host: str, port: int, ctx: ToolContext) -> bool:
    """Whether the allow-list names this host itself (no wildcard) with this port (or a default one, or ``*``)."""
    for pattern, allowed in (_entry(e) for e in ctx.allowed_hosts):
        default = allowed is None and port in DEFAULT_PORTS.values()
        if pattern == host and (default or allowed == "*" or allowed == str(port)):
            return True
    return False


def non_public(address: IPAddress) -> str | None:
    """What makes an address one the web tools may not reach by a wildcard (``loopback``, ...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return non_public(embedded)
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of a host name (an IP literal is its own address), in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    return addresses
