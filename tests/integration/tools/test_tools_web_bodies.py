"""Compressed bodies cannot bypass the web tools' body cap: gzip and zstd bombs cost no more than a plain page."""

from __future__ import annotations

import tracemalloc
import zlib
from typing import Any

import pytest

from actors.tools import ToolContext, ToolError, get_tool, run_tool
from actors.tools._body import decode_body
from actors.tools._web import MAX_BODY_BYTES
from tests.fakes.local_http import BOMB_BYTES, LocalServer, bomb, gzipped

# Peak Python memory a bomb may cost: the cap (raw, decoded, text) and change, far below what it expands to.
MEMORY_BUDGET = 8 * MAX_BODY_BYTES
assert BOMB_BYTES > 3 * MEMORY_BUDGET


async def _call(name: str, ctx: ToolContext, **args: Any) -> Any:
    return await run_tool(get_tool(name), args, ctx)


async def _peak_memory(name: str, ctx: ToolContext, **args: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = await _call(name, ctx, **args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
@pytest.mark.parametrize("tool", ["web_scrape", "http_request"])
async def test_a_compression_bomb_is_cut_at_the_body_cap(
    ctx: ToolContext, local_server: LocalServer, encoding: str, tool: str
) -> None:
    bomb(encoding)  # made before measuring (about 130 kB of gzip, 4 kB of zstd, for 128 MB of zeros)
    result, peak = await _peak_memory(tool, ctx, url=f"{local_server.url}/{encoding}-bomb", max_chars=1_000)
    assert result["status"] == 200
    assert result["text"] == "\0" * 1_000
    assert result["truncated"] is True
    assert peak < MEMORY_BUDGET, f"{peak} bytes for a {encoding} bomb"
    assert local_server.requests[-1]["headers"]["Accept-Encoding"] == "identity"


async def test_a_gzip_page_sent_regardless_of_accept_encoding_is_still_read(
    ctx: ToolContext, local_server: LocalServer
) -> None:
    page = await _call("web_scrape", ctx, url=f"{local_server.url}/gzip-page")
    assert page["title"] == "The Test Page"
    assert "beta & gamma" in page["text"]


async def test_a_deflate_body_is_read(ctx: ToolContext, local_server: LocalServer) -> None:
    result = await _call("http_request", ctx, url=f"{local_server.url}/deflate-plain")
    assert result["text"] == "deflated text"
    assert result["headers"]["content-encoding"] == "deflate"


async def test_a_coding_that_cannot_be_bounded_is_refused_with_a_clear_error(
    ctx: ToolContext, local_server: LocalServer
) -> None:
    with pytest.raises(ToolError, match=r"'br' content coding although 'identity' was asked"):
        await _call("http_request", ctx, url=f"{local_server.url}/brotli")


def test_decode_body_bounds_every_coding_and_layers() -> None:
    data = b"x" * 100_000
    deflated = zlib.compress(data)
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = raw_deflate.compress(data) + raw_deflate.flush()
    assert decode_body(gzipped(data), "gzip", 10) == (b"x" * 10, True)
    assert decode_body(deflated, "deflate", 200_000) == (data, False)
    assert decode_body(raw, "deflate", 200_000) == (data, False)
    assert decode_body(gzipped(gzipped(data)), "gzip, gzip", 50) == (b"x" * 50, True)
    assert decode_body(data, "identity", 7) == (b"x" * 7, True)
    with pytest.raises(ToolError, match="the gzip body is corrupt"):
        decode_body(b"not gzip at all", "gzip", 10)
