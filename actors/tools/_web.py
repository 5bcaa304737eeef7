"""Web tools: ``web_search`` / ``serper_search``, ``web_scrape`` and ``http_request``.

``web_scrape`` and ``http_request`` reach only hosts and ports in ``ToolContext.allowed_hosts`` (checked on
every redirect too), and a private or loopback address only through a host named exactly there (``_hosts``).
The search backend is chosen by what the environment configures, in this order: Serper
(``SERPER_API_KEY``), Tavily (``TAVILY_API_KEY``), SearxNG (``SEARXNG_URL``). ``SERPER_URL`` and
``TAVILY_URL`` override the services' base URLs (for tests and proxies). httpx is imported on first use.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ._base import FunctionTool, ToolContext, ToolError, object_schema
from ._body import decode_body
from ._hosts import check_host
from ._html import html_to_text

if TYPE_CHECKING:
    import httpx

SERPER_URL = "https://google.serper.dev"
TAVILY_URL = "https://api.tavily.com"
NO_BACKEND = "no search backend configured: set SERPER_API_KEY, TAVILY_API_KEY or SEARXNG_URL"
DEFAULT_MAX_CHARS = 20_000
MAX_BODY_BYTES = 5_000_000
MAX_RESULTS = 20
_SHOWN_HEADERS = ("content-type", "content-length", "content-encoding", "location", "last-modified", "etag")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@asynccontextmanager
async def _client(ctx: ToolContext, *, guard_hosts: bool) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client bounded by the context's timeout; with ``guard_hosts``, every request (redirects
    included) is checked against the allow-list before it is sent."""
    import httpx

    async def guard(request: httpx.Request) -> None:
        check_host(str(request.url), ctx)

    hooks = {"request": [guard]} if guard_hosts else {}
    transport: httpx.AsyncBaseTransport | None = None
    if guard_hosts:
        from ._guard import GuardedTransport

        transport = GuardedTransport(ctx)
    async with httpx.AsyncClient(
        transport=transport,
        timeout=ctx.timeout_s,
        follow_redirects=True,
        max_redirects=5,
        event_hooks=hooks,
        trust_env=False,
        headers={"Accept-Encoding": "identity"},  # bodies are decoded by fetch, within the cap
    ) as client:
        try:
            yield client
        except httpx.TimeoutException as exc:
            raise ToolError(f"timed out after {ctx.timeout_s:g}s ({type(exc).__name__})") from exc
        except httpx.TooManyRedirects as exc:
            raise ToolError(f"too many redirects: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ToolError(f"request failed: {type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:  # not an HTTPError: e.g. an IPv4 address in octal, 0177.0.0.1
            raise ToolError(f"invalid URL: {exc}") from exc


async def fetch(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, str]:
    """Send a request and read at most ``MAX_BODY_BYTES`` of the body (a huge download must not fill memory).

    The raw bytes are read (at most ``MAX_BODY_BYTES`` of them) and decoded here within the same cap: a
    compressed body that expands to gigabytes costs no more than a plain one.

    Returns:
        The response (body not loaded) and the body decoded as text (the declared charset, else UTF-8).

    Raises:
        ToolError: the body uses a content coding that cannot be decoded safely, or is corrupt.
    """
    async with client.stream(method, url, **kwargs) as response:
        raw = bytearray()
        async for chunk in response.aiter_raw():
            raw += chunk
            if len(raw) >= MAX_BODY_BYTES:
                break
    body, _ = decode_body(bytes(raw[:MAX_BODY_BYTES]), response.headers.get("content-encoding", ""), MAX_BODY_BYTES)
    try:
        return response, body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return response, body.decode("utf-8", errors="replace")


def _truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut text to ``max_chars``; report whether it was cut."""
    return (text[:max_chars], True) if len(text) > max_chars else (text, False)


# --- search -------------------------------------------------------------------------------------------------


def _base_url(ctx: ToolContext, name: str, default: str) -> str:
    """A backend base URL from the environment (``name``) or the default, without a trailing slash."""
    return (ctx.env.get(name) or default).rstrip("/")


def _results(items: Any, url_key: str, snippet_key: str, limit: int) -> list[dict[str, str]]:
    """Normalise a backend's result list to ``{title, url, snippet}``."""
    if not isinstance(items, list):
        return []
    return [
        {
            "title": str(item.get("title", "")),
            "url": str(item.get(url_key, "")),
            "snippet": str(item.get(snippet_key, "")),
        }
        for item in items[:limit]
        if isinstance(item, Mapping)
    ]


def _backend_error(backend: str, response: httpx.Response, text: str, key_var: str | None) -> ToolError:
    """A ToolError for a backend's HTTP error status, pointing at the key when it was refused."""
    hint = f"; check {key_var}" if key_var and response.status_code in (401, 403) else ""
    return ToolError(f"{backend} search failed with HTTP {response.status_code}: {text[:200]!r}{hint}")


async def search(query: str, num_results: int, ctx: ToolContext) -> list[dict[str, str]]:
    """Search the web with the first configured backend.

    Returns:
        Up to ``num_results`` results as ``{title, url, snippet}``.

    Raises:
        ToolError: no backend configured, the backend refused or failed, or its reply was not JSON.
    """
    env = ctx.env
    async with _client(ctx, guard_hosts=False) as client:
        if env.get("SERPER_API_KEY"):
            backend, key_var = "Serper", "SERPER_API_KEY"
            response, text = await fetch(
                client,
                "POST",
                f"{_base_url(ctx, 'SERPER_URL', SERPER_URL)}/search",
                json={"q": query, "num": num_results},
                headers={"X-API-KEY": env["SERPER_API_KEY"]},
            )
            items_key, url_key, snippet_key = "organic", "link", "snippet"
        elif env.get("TAVILY_API_KEY"):
            backend, key_var = "Tavily", "TAVILY_API_KEY"
            response, text = await fetch(
                client,
                "POST",
                f"{_base_url(ctx, 'TAVILY_URL', TAVILY_URL)}/search",
                json={"query": query, "max_results": num_results},
                headers={"Authorization": f"Bearer {env['TAVILY_API_KEY']}"},
            )
            items_key, url_key, snippet_key = "results", "url", "content"
        elif env.get("SEARXNG_URL"):
            backend, key_var = "SearxNG", None
            response, text = await fetch(
                client, "GET", f"{_base_url(ctx, 'SEARXNG_URL', '')}/search", params={"q": query, "format": "json"}
            )
            items_key, url_key, snippet_key = "results", "url", "content"
        else:
            raise ToolError(NO_BACKEND)
    if response.is_error:
        raise _backend_error(backend, response, text, key_var)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        hint = " (is the JSON format enabled in its settings.yml?)" if backend == "SearxNG" else ""
        raise ToolError(f"{backend} search returned a reply that is not JSON{hint}") from exc
    items = body.get(items_key) if isinstance(body, Mapping) else None
    return _results(items, url_key, snippet_key, num_results)


async def _web_search(args: Mapping[str, Any], ctx: ToolContext) -> list[dict[str, str]]:
    """Run a web search."""
    query = str(args["query"]).strip()
    if not query:
        raise ToolError("query is empty")
    return await search(query, int(args.get("num_results", 5)), ctx)


def _search_tool(name: str) -> FunctionTool:
    """The search tool under one of its names (``web_search`` and ``serper_search`` are the same tool)."""
    return FunctionTool(
        name=name,
        description=(
            "Search the web. Returns a list of results with title, url and snippet. "
            "Uses Serper, Tavily or SearxNG, whichever is configured."
        ),
        parameters=object_schema(
            {
                "query": {"type": "string", "description": "What to search for."},
                "num_results": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_RESULTS,
                    "description": "How many results (default 5).",
                },
            },
            required=["query"],
        ),
        fn=_web_search,
        timeout_s=30.0,
    )


# --- scrape and raw requests --------------------------------------------------------------------------------


async def _web_scrape(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Fetch a page from an allowed host and return its readable text."""
    url = str(args["url"])
    check_host(url, ctx)
    max_chars = int(args.get("max_chars", DEFAULT_MAX_CHARS))
    async with _client(ctx, guard_hosts=True) as client:
        accept = {"Accept": "text/html, text/plain;q=0.9, */*;q=0.5"}
        response, body = await fetch(client, "GET", url, headers=accept)
    if response.is_error:
        raise ToolError(f"GET {url} returned HTTP {response.status_code}")
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or (not content_type and body.lstrip()[:1] == "<"):
        title, text = html_to_text(body)
    else:
        title, text = "", body
    text, truncated = _truncate(text, max_chars)
    return {
        "url": str(response.url),
        "status": response.status_code,
        "title": title,
        "text": text,
        "truncated": truncated,
    }


async def _http_request(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Send one HTTP request to an allowed host."""
    method, url = str(args.get("method", "GET")).upper(), str(args["url"])
    if "body" in args and "json" in args:
        raise ToolError("give either 'body' (text) or 'json', not both")
    check_host(url, ctx)
    headers = {str(k): str(v) for k, v in dict(args.get("headers", {})).items()}
    max_chars = int(args.get("max_chars", DEFAULT_MAX_CHARS))
    content = {"json": args["json"]} if "json" in args else {"content": str(args["body"])} if "body" in args else {}
    async with _client(ctx, guard_hosts=True) as client:
        response, body = await fetch(client, method, url, headers=headers, params=args.get("params"), **content)
    text, truncated = _truncate(body, max_chars)
    return {
        "status": response.status_code,
        "url": str(response.url),
        "headers": {k: response.headers[k] for k in _SHOWN_HEADERS if k in response.headers},
        "text": text,
        "truncated": truncated,
    }


WEB_SEARCH = _search_tool("web_search")
SERPER_SEARCH = _search_tool("serper_search")

WEB_SCRAPE = FunctionTool(
    name="web_scrape",
    description="Fetch a web page (from an allowed host) and return its title and readable text.",
    parameters=object_schema(
        {
            "url": {"type": "string", "description": "The http(s) URL of the page."},
            "max_chars": {
                "type": "integer",
                "minimum": 1,
                "description": f"Return at most this many characters of text (default {DEFAULT_MAX_CHARS}).",
            },
        },
        required=["url"],
    ),
    fn=_web_scrape,
    timeout_s=30.0,
)

HTTP_REQUEST = FunctionTool(
    name="http_request",
    description=(
        "Send an HTTP request to an allowed host and return the status, main headers and the body as text. "
        "Give 'body' (text) or 'json', not both."
    ),
    parameters=object_schema(
        {
            "method": {"type": "string", "enum": _METHODS, "description": "HTTP method (default GET)."},
            "url": {"type": "string", "description": "The http(s) URL."},
            "headers": {"type": "object", "description": "Request headers."},
            "params": {"type": "object", "description": "Query-string parameters."},
            "body": {"type": "string", "description": "Request body as text."},
            "json": {"description": "Request body as JSON (any JSON value)."},
            "max_chars": {
                "type": "integer",
                "minimum": 1,
                "description": f"Return at most this many characters of the body (default {DEFAULT_MAX_CHARS}).",
            },
        },
        required=["url"],
    ),
    fn=_http_request,
    timeout_s=30.0,
)

WEB_TOOLS = (WEB_SEARCH, SERPER_SEARCH, WEB_SCRAPE, HTTP_REQUEST)
