"""The HTTP allow-list checks ports too, and a name reaches a private address only if the allow-list names it.

Names are resolved once, by the connecting backend, and the connection goes to the address that was
checked: a DNS answer that changes between a check and the connect (rebinding) is never used.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpcore
import pytest

import actors.tools._guard as guard
from actors.tools import ToolContext, ToolError, get_tool, run_tool
from actors.tools._hosts import IPAddress, check_host, non_public
from tests.fakes.local_http import LocalServer


def _ctx(workspace: Path, *hosts: str) -> ToolContext:
    return ToolContext(workspace=workspace, allowed_hosts=frozenset(hosts), env={}, timeout_s=5.0)


async def _scrape(ctx: ToolContext, url: str) -> Any:
    return await run_tool(get_tool("web_scrape"), {"url": url}, ctx)


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("http://example.com/", {"example.com"}, True),
        ("http://example.com:80/", {"example.com"}, True),
        ("https://example.com:443/", {"example.com"}, True),
        ("http://example.com:8080/", {"example.com"}, False),
        ("https://example.com:80/", {"example.com"}, False),
        ("http://example.com:8080/", {"example.com:8080"}, True),
        ("http://example.com/", {"example.com:8080"}, False),
        ("http://example.com:6379/", {"example.com:*"}, True),
        ("https://any.where/", {"*"}, True),
        ("https://any.where:8443/", {"*"}, False),
        ("https://any.where:8443/", {"*:8443"}, True),
        ("https://api.example.com:22/", {"*.example.com"}, False),
        ("https://api.example.com:8443/", {"*.example.com:8443"}, True),
        ("http://[::1]:8080/", {"[::1]:8080"}, True),
        ("http://[::1]/", {"::1"}, True),
        ("http://[::1]:8080/", {"::1"}, False),
    ],
)
def test_an_allow_list_entry_without_a_port_allows_only_the_default_port(
    workspace: Path, url: str, hosts: set[str], allowed: bool
) -> None:
    ctx = _ctx(workspace, *hosts)
    if allowed:
        check_host(url, ctx)
    else:
        with pytest.raises(ToolError, match=r"port \d+ of host '.+' is not allowed; .* add '.+:\d+'"):
            check_host(url, ctx)


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://example.com:0/", "http://example.com:x/"])
def test_an_invalid_port_is_refused(workspace: Path, url: str) -> None:
    with pytest.raises(ToolError, match="URL has an invalid port"):
        check_host(url, _ctx(workspace, "example.com:*"))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "private"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_addresses_that_are_not_public_are_named(address: str, kind: str | None) -> None:
    assert non_public(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ],
)
async def test_a_wildcard_never_reaches_a_loopback_address_whatever_it_is_called(
    workspace: Path, local_server: LocalServer, host: str
) -> None:
    with pytest.raises(ToolError, match=r"resolves to .+, a (loopback|unspecified) address; only a host named exactly"):
        await _scrape(_ctx(workspace, "*:*"), f"http://{host}:{local_server.port}/page")
    assert local_server.requests == []


async def test_an_address_httpx_cannot_parse_is_refused_clearly(workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"invalid URL: Invalid IPv4 address: '0177\.0\.0\.1'"):
        await _scrape(_ctx(workspace, "*:*"), "http://0177.0.0.1/")


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1", "192.168.0.1", "100.64.0.1", "[fe80::1]"])
async def test_a_wildcard_never_reaches_private_or_metadata_addresses(workspace: Path, address: str) -> None:
    with pytest.raises(ToolError, match=r"a (private|link-local|non-public) address"):
        await _scrape(_ctx(workspace, "*"), f"http://{address}/latest/meta-data/")


async def test_a_host_named_exactly_may_reach_a_loopback_address(workspace: Path, local_server: LocalServer) -> None:
    page = await _scrape(_ctx(workspace, "localhost:*"), f"http://localhost:{local_server.port}/page")
    assert page["title"] == "The Test Page"


async def test_a_redirect_to_a_loopback_name_allowed_only_by_a_wildcard_is_refused(
    workspace: Path, local_server: LocalServer
) -> None:
    ctx = _ctx(workspace, f"127.0.0.1:{local_server.port}", "*:*")
    with pytest.raises(ToolError, match=r"host 'localhost' resolves to 127\.0\.0\.1, a loopback address"):
        await _scrape(ctx, f"{local_server.url}/redirect-away")
    assert [r["path"] for r in local_server.requests] == ["/redirect-away"]


async def test_a_redirect_to_another_port_is_checked_against_the_allow_list(
    workspace: Path, local_server: LocalServer
) -> None:
    with pytest.raises(ToolError, match=r"port 1 of host '127\.0\.0\.1' is not allowed"):
        await _scrape(_ctx(workspace, f"127.0.0.1:{local_server.port}"), f"{local_server.url}/redirect-port")


class _Resolver:
    """A DNS that answers a list of answers in turn (the last one for ever), counting the questions."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = [[ipaddress.ip_address(a) for a in answer] for answer in answers]
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


async def test_the_connection_goes_to_the_address_that_was_checked(
    workspace: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rebind.example exists only in this resolver: fetching it proves the connect used the checked answer.
    resolver = _Resolver(["127.0.0.1"])
    monkeypatch.setattr(guard, "resolve", resolver)
    page = await _scrape(_ctx(workspace, "rebind.example:*"), f"http://rebind.example:{local_server.port}/page")
    assert page["title"] == "The Test Page"
    assert resolver.asked == ["rebind.example"]
    assert local_server.requests[0]["headers"]["Host"] == f"rebind.example:{local_server.port}"


async def test_a_dns_answer_that_rebinds_to_loopback_is_never_used(
    workspace: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = _Resolver(["93.184.216.34"], ["127.0.0.1"])
    connected: list[tuple[str, int]] = []

    async def no_internet(self: Any, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        connected.append((host, port))
        raise httpcore.ConnectError("no internet in tests")

    monkeypatch.setattr(guard, "resolve", resolver)
    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", no_internet)
    ctx = _ctx(workspace, "*:*")
    url = f"http://rebind.example:{local_server.port}/page"
    with pytest.raises(ToolError, match="ConnectError: no internet in tests"):
        await _scrape(ctx, url)
    # One question, and the connect went to its (public) answer, never to a later one.
    assert (resolver.asked, connected) == (["rebind.example"], [("93.184.216.34", local_server.port)])
    with pytest.raises(ToolError, match=r"host 'rebind\.example' resolves to 127\.0\.0\.1, a loopback address"):
        await _scrape(ctx, url)
    assert connected == [("93.184.216.34", local_server.port)]
    assert local_server.requests == []


async def test_a_name_with_any_private_address_among_its_answers_is_refused(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard, "resolve", _Resolver(["93.184.216.34", "10.0.0.7"]))
    with pytest.raises(ToolError, match=r"resolves to 10\.0\.0\.7, a private address"):
        await _scrape(_ctx(workspace, "*"), "http://mixed.example/")
