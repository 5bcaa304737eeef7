"""A local HTTP server for the web-tool tests: a few routes on 127.0.0.1, fake search backends, no internet."""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE = """<!doctype html>
<html><head><title>The  Test
Page</title><style>body { color: red }</style><script>var secret = "not text";</script></head>
<body><h1>Heading</h1><p>First   paragraph
spread over lines.</p><ul><li>alpha</li><li>beta &amp; gamma</li></ul>
<noscript>enable JS</noscript><p>Last paragraph.</p></body></html>"""


BOMB_BYTES = 128 * 1024 * 1024  # what a compression bomb expands to


@functools.cache
def bomb(encoding: str) -> bytes:
    """``BOMB_BYTES`` zero bytes compressed with gzip or zstd (about 130 kB and 4 kB), made once per session."""
    chunk, count = b"\0" * (1 << 20), BOMB_BYTES >> 20
    if encoding == "gzip":
        gz = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return b"".join(gz.compress(chunk) for _ in range(count)) + gz.flush()
    import zstandard

    zs = zstandard.ZstdCompressor(level=3).compressobj()
    return b"".join(zs.compress(chunk) for _ in range(count)) + zs.flush()


def gzipped(data: bytes) -> bytes:
    """``data`` as a gzip stream."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return gz.compress(data) + gz.flush()


@dataclass
class LocalServer:
    """A threaded http.server on 127.0.0.1 with a few routes; records what it received."""

    url: str
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes | str, content_type: str, **headers: str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value), "application/json")

        def _handle(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            query = dict(urllib.parse.parse_qsl(parts.query))
            server.requests.append(
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": query,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            route = parts.path
            if route == "/page":
                self._send(200, PAGE, "text/html; charset=utf-8")
            elif route == "/plain":
                self._send(200, "just text\nsecond line", "text/plain")
            elif route == "/big":
                self._send(200, "x" * 50_000, "text/plain")
            elif route in ("/gzip-bomb", "/zstd-bomb"):  # compressed whatever Accept-Encoding says
                encoding = route[1:5]
                self._send(200, bomb(encoding), "text/plain", Content_Encoding=encoding)
            elif route == "/gzip-page":
                self._send(200, gzipped(PAGE.encode()), "text/html; charset=utf-8", Content_Encoding="gzip")
            elif route == "/deflate-plain":
                self._send(200, zlib.compress(b"deflated text"), "text/plain", Content_Encoding="deflate")
            elif route == "/brotli":
                self._send(200, b"\x8b\x03\x80hello\x03", "text/plain", Content_Encoding="br")
            elif route == "/missing":
                self._send(404, "no such page", "text/plain")
            elif route == "/slow":
                time.sleep(1.0)
                self._send(200, "finally", "text/plain")
            elif route == "/redirect-in":
                self._send(302, "", "text/plain", Location="/page")
            elif route == "/redirect-away":
                self._send(302, "", "text/plain", Location=f"http://localhost:{server.port}/page")
            elif route == "/redirect-port":  # same host, another port
                self._send(302, "", "text/plain", Location="http://127.0.0.1:1/page")
            elif route == "/echo":
                self._json(
                    200, {"method": self.command, "query": query, "body": body, "x_test": self.headers["X-Test"]}
                )
            elif route == "/search":  # Serper
                if self.headers.get("X-API-KEY") != "serper-key":
                    self._json(403, {"message": "Unauthorized"})
                    return
                request = json.loads(body)
                organic = [
                    {"title": f"Result {i}", "link": f"https://r{i}.example/", "snippet": f"about {request['q']}"}
                    for i in range(request.get("num", 10))
                ]
                self._json(200, {"searchParameters": request, "organic": organic})
            elif route == "/tavily/search":
                request = json.loads(body)
                results = [{"title": "T", "url": "https://t.example/", "content": f"tavily {request['query']}"}]
                self._json(200, {"results": results})
            elif route == "/searx/search":
                results = [{"title": "S", "url": "https://s.example/", "content": f"searx {query.get('q')}"}]
                self._json(200, {"results": results})
            else:
                self._send(404, "unknown route", "text/plain")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler


@contextmanager
def serve() -> Iterator[LocalServer]:
    """Run a local HTTP server on a free port of 127.0.0.1 until the block ends."""
    server = LocalServer(url="", port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    # A client that gave up (timeout tests) makes the slow handler's write fail; that is expected.
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    server.port = httpd.server_address[1]
    server.url = f"http://127.0.0.1:{server.port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
