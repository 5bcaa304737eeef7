"""Web tools against a local http.server: allow-listed hosts, redirects, timeouts, and fake search backends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from actors.tools import ToolContext, ToolError, get_tool, html_to_text, run_tool
from actors.tools._web import NO_BACKEND, check_host
from tests.fakes.local_http import LocalServer


def _ctx(workspace: Path, *, hosts: set[str] | None = None, timeout_s: float = 5.0, **env: str) -> ToolContext:
    return ToolContext(
        workspace=workspace, allowed_hosts=frozenset(hosts or {"127.0.0.1:*"}), env=env, timeout_s=timeout_s
    )


async def _call(name: str, ctx: ToolContext, **args: Any) -> Any:
    return await run_tool(get_tool(name), args, ctx)


def test_html_to_text_keeps_visible_text_and_drops_scripts_and_styles() -> None:
    title, text = html_to_text(
        "<html><head><title> A  title </title><style>p{}</style></head><body><h1>Head</h1>"
        "<p>One\n two</p><script>alert(1)</script><ul><li>x</li><li>y &amp; z</li></ul>"
        "<table><tr><td>a</td><td>b</td></tr></table><pre>keep\n  this</pre></body></html>"
    )
    assert title == "A title"
    assert text == "Head\n\nOne two\n\n- x\n- y & z\n\na | b\n\nkeep\nthis"


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("http://example.com/x", {"example.com"}, True),
        ("https://EXAMPLE.com:8443/x", {"example.com:8443"}, True),
        ("https://EXAMPLE.com/x", {"example.com"}, True),
        ("https://api.example.com/x", {"*.example.com"}, True),
        ("https://example.com.evil.net/x", {"example.com", "*.example.com"}, False),
        ("https://evil.net/x", {"*"}, True),
        ("https://evil.net/x", set(), False),
        ("http://user@example.com@evil.net/", {"example.com"}, False),
    ],
)
def test_check_host_matches_exact_names_wildcards_and_star(
    workspace: Path, url: str, hosts: set[str], allowed: bool
) -> None:
    ctx = ToolContext(workspace=workspace, allowed_hosts=frozenset(hosts), env={})
    if allowed:
        check_host(url, ctx)
    else:
        with pytest.raises(ToolError, match="is not allowed; add it to the tools' allowed hosts"):
            check_host(url, ctx)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)"])
async def test_urls_that_are_not_http_are_refused(ctx: ToolContext, url: str) -> None:
    with pytest.raises(ToolError, match="only http and https URLs are allowed"):
        await _call("web_scrape", ctx, url=url)


async def test_web_scrape_returns_the_title_and_readable_text(ctx: ToolContext, local_server: LocalServer) -> None:
    page = await _call("web_scrape", ctx, url=f"{local_server.url}/page")
    assert page["title"] == "The Test Page"
    assert page["status"] == 200
    assert "Heading" in page["text"]
    assert "First paragraph spread over lines." in page["text"]
    assert "- alpha\n- beta & gamma" in page["text"]
    assert "secret" not in page["text"]
    assert "color" not in page["text"]
    assert "enable JS" not in page["text"]
    assert page["truncated"] is False


async def test_web_scrape_returns_plain_text_as_is_and_truncates_at_max_chars(
    ctx: ToolContext, local_server: LocalServer
) -> None:
    plain = await _call("web_scrape", ctx, url=f"{local_server.url}/plain")
    assert plain["text"] == "just text\nsecond line"
    big = await _call("web_scrape", ctx, url=f"{local_server.url}/big", max_chars=100)
    assert big["text"] == "x" * 100
    assert big["truncated"] is True


async def test_web_scrape_follows_a_redirect_on_an_allowed_host(ctx: ToolContext, local_server: LocalServer) -> None:
    page = await _call("web_scrape", ctx, url=f"{local_server.url}/redirect-in")
    assert page["url"] == f"{local_server.url}/page"
    assert page["title"] == "The Test Page"


async def test_web_scrape_refuses_a_redirect_to_a_host_that_is_not_allowed(
    ctx: ToolContext, local_server: LocalServer
) -> None:
    with pytest.raises(ToolError, match="host 'localhost' is not allowed"):
        await _call("web_scrape", ctx, url=f"{local_server.url}/redirect-away")
    assert [r["path"] for r in local_server.requests] == ["/redirect-away"]  # /page was never fetched


async def test_web_scrape_refuses_a_host_that_is_not_allowed_without_connecting(
    workspace: Path, local_server: LocalServer
) -> None:
    ctx = _ctx(workspace, hosts={"example.com"})
    with pytest.raises(ToolError, match=r"host '127\.0\.0\.1' is not allowed.*currently example\.com"):
        await _call("web_scrape", ctx, url=f"{local_server.url}/page")
    assert local_server.requests == []


async def test_an_empty_allow_list_refuses_every_host(workspace: Path, local_server: LocalServer) -> None:
    ctx = ToolContext(workspace=workspace, env={})
    with pytest.raises(ToolError, match="currently empty, so no host is allowed"):
        await _call("http_request", ctx, url=f"{local_server.url}/echo")
    assert local_server.requests == []


async def test_web_scrape_reports_an_http_error_status(ctx: ToolContext, local_server: LocalServer) -> None:
    with pytest.raises(ToolError, match=r"GET .*/missing returned HTTP 404"):
        await _call("web_scrape", ctx, url=f"{local_server.url}/missing")


async def test_http_request_sends_json_params_and_headers(ctx: ToolContext, local_server: LocalServer) -> None:
    result = await _call(
        "http_request",
        ctx,
        method="POST",
        url=f"{local_server.url}/echo",
        params={"page": "2"},
        headers={"X-Test": "yes"},
        json={"a": 1},
    )
    assert result["status"] == 200
    assert result["headers"]["content-type"] == "application/json"
    assert result["truncated"] is False
    assert local_server.requests[-1]["method"] == "POST"
    assert result["text"] == '{"method": "POST", "query": {"page": "2"}, "body": "{\\"a\\":1}", "x_test": "yes"}'


async def test_http_request_returns_error_statuses_instead_of_raising(
    ctx: ToolContext, local_server: LocalServer
) -> None:
    result = await _call("http_request", ctx, method="DELETE", url=f"{local_server.url}/missing", max_chars=5)
    assert result["status"] == 404
    assert result["text"] == "no su"
    assert result["truncated"] is True


async def test_http_request_refuses_both_a_body_and_json(ctx: ToolContext, local_server: LocalServer) -> None:
    with pytest.raises(ToolError, match="give either 'body' \\(text\\) or 'json', not both"):
        await _call("http_request", ctx, url=f"{local_server.url}/echo", body="x", json={})


async def test_http_request_refuses_an_unknown_method(ctx: ToolContext, local_server: LocalServer) -> None:
    with pytest.raises(ToolError, match="'method' must be one of 'GET'"):
        await _call("http_request", ctx, method="BREW", url=f"{local_server.url}/echo")


async def test_http_request_refuses_a_host_that_is_not_allowed(workspace: Path, local_server: LocalServer) -> None:
    with pytest.raises(ToolError, match=r"tool http_request: host '127\.0\.0\.1' is not allowed"):
        await _call("http_request", _ctx(workspace, hosts={"localhost"}), url=f"{local_server.url}/echo")


async def test_a_slow_server_times_out_with_a_clear_error(workspace: Path, local_server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"^tool http_request: timed out after 0\.3s"):
        await _call("http_request", _ctx(workspace, timeout_s=0.3), url=f"{local_server.url}/slow")
    assert time.monotonic() - started < 1.0


async def test_web_search_uses_serper_when_its_key_is_set(workspace: Path, local_server: LocalServer) -> None:
    ctx = _ctx(workspace, hosts={"example.com"}, SERPER_API_KEY="serper-key", SERPER_URL=local_server.url + "/")
    results = await _call("web_search", ctx, query="actors on NATS", num_results=2)
    assert results == [
        {"title": "Result 0", "url": "https://r0.example/", "snippet": "about actors on NATS"},
        {"title": "Result 1", "url": "https://r1.example/", "snippet": "about actors on NATS"},
    ]
    request = local_server.requests[-1]
    assert (request["method"], request["path"]) == ("POST", "/search")
    assert request["headers"]["X-API-KEY"] == "serper-key"


async def test_serper_search_is_web_search_under_the_seed_name(workspace: Path, local_server: LocalServer) -> None:
    ctx = _ctx(workspace, SERPER_API_KEY="serper-key", SERPER_URL=local_server.url)
    results = await _call("serper_search", ctx, query="q")
    assert len(results) == 5


async def test_serper_is_preferred_over_tavily_and_searxng(workspace: Path, local_server: LocalServer) -> None:
    ctx = _ctx(
        workspace,
        SERPER_API_KEY="serper-key",
        SERPER_URL=local_server.url,
        TAVILY_API_KEY="t",
        TAVILY_URL=f"{local_server.url}/tavily",
        SEARXNG_URL=f"{local_server.url}/searx",
    )
    await _call("web_search", ctx, query="q", num_results=1)
    assert [r["path"] for r in local_server.requests] == ["/search"]


async def test_web_search_falls_back_to_tavily_then_searxng(workspace: Path, local_server: LocalServer) -> None:
    tavily = _ctx(workspace, TAVILY_API_KEY="tvly-key", TAVILY_URL=f"{local_server.url}/tavily")
    assert await _call("web_search", tavily, query="q") == [
        {"title": "T", "url": "https://t.example/", "snippet": "tavily q"}
    ]
    assert local_server.requests[-1]["headers"]["Authorization"] == "Bearer tvly-key"
    searx = _ctx(workspace, SEARXNG_URL=f"{local_server.url}/searx")
    assert await _call("web_search", searx, query="q") == [
        {"title": "S", "url": "https://s.example/", "snippet": "searx q"}
    ]
    assert local_server.requests[-1]["query"] == {"q": "q", "format": "json"}


async def test_web_search_without_a_backend_says_which_variables_to_set(workspace: Path) -> None:
    with pytest.raises(ToolError, match=f"^tool web_search: {NO_BACKEND}$"):
        await _call("web_search", _ctx(workspace), query="q")
    assert "SERPER_API_KEY, TAVILY_API_KEY or SEARXNG_URL" in NO_BACKEND


async def test_web_search_with_a_refused_key_says_which_key_to_check(
    workspace: Path, local_server: LocalServer
) -> None:
    ctx = _ctx(workspace, SERPER_API_KEY="wrong", SERPER_URL=local_server.url)
    with pytest.raises(ToolError, match=r"Serper search failed with HTTP 403.*; check SERPER_API_KEY"):
        await _call("web_search", ctx, query="q")


async def test_web_search_refuses_an_empty_query(workspace: Path) -> None:
    with pytest.raises(ToolError, match="query is empty"):
        await _call("web_search", _ctx(workspace, SEARXNG_URL="http://127.0.0.1:9"), query="  ")
