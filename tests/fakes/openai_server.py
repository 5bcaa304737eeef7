"""A local OpenAI-compatible HTTP server for tests: scripted answers, recorded requests, SSE streaming.

It speaks the real wire format of ``POST /v1/chat/completions`` (and ``/chat/completions``) so that
litellm's own HTTP path is exercised; nothing here reaches the internet. Usage::

    with FakeOpenAI(default_content="hi") as fake:
        fake.script('{"answer": 1}', ErrorReply.rate_limited())
        ...  # point a client at fake.api_base
        assert fake.requests[0].model == "gpt-4o-mini"
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error answered instead of a completion, with an OpenAI-style error body."""

    status: int
    message: str
    type: str
    code: str | None = None
    retry_after_s: int | None = None
    # More response headers, e.g. (("retry-after-ms", "300"),) or an HTTP-date Retry-After.
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def rate_limited(cls, retry_after_s: int = 1) -> Self:
        return cls(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", retry_after_s)

    @classmethod
    def unavailable(cls, *headers: tuple[str, str]) -> Self:
        return cls(503, "The server is overloaded or not ready yet.", "server_error", None, None, headers)

    @classmethod
    def server_error(cls) -> Self:
        return cls(500, "The server had an error while processing your request.", "server_error", None)

    @classmethod
    def unauthorized(cls) -> Self:
        return cls(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}


@dataclass(frozen=True)
class ToolCallsReply:
    """An assistant turn that calls tools: [(name, arguments), ...] in the OpenAI ``tool_calls`` format."""

    calls: tuple[tuple[str, dict[str, Any]], ...]


Scripted = str | ErrorReply | ToolCallsReply


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received: path, headers (lower-cased names), the JSON body and when it arrived."""

    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    at: float = field(default_factory=time.time)

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class _State:
    default_content: str
    queue: deque[Scripted] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    # Seconds each answer takes, as a real provider's would (the request is recorded on arrival).
    latency_s: float = 0.0

    def take(self, request: RecordedRequest) -> tuple[Scripted, int]:
        with self.lock:
            self.requests.append(request)
            self.counter += 1
            answer = self.queue.popleft() if self.queue else self.default_content
            return answer, self.counter


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 and a free port, served from a background thread.

    Args:
        default_content: the assistant content answered when the script queue is empty.
        stream_chunk_chars: how many characters of content each streamed chunk carries.
        latency_s: how long each answer takes.
    """

    def __init__(self, default_content: str = "ok", *, stream_chunk_chars: int = 4, latency_s: float = 0.0) -> None:
        self._state = _State(default_content, latency_s=latency_s)
        self._chunk_chars = stream_chunk_chars
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        handler = _handler_class(self._state, self._chunk_chars)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what tests use --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake OpenAI server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_base(self) -> str:
        """What clients take as ``api_base`` (the OpenAI SDK appends ``/chat/completions``)."""
        return f"{self.base_url}/v1"

    def script(self, *answers: Scripted) -> None:
        """Queue answers, used in order: a content string, or an `ErrorReply`."""
        with self._state.lock:
            self._state.queue.extend(answers)

    @property
    def default_content(self) -> str:
        return self._state.default_content

    @default_content.setter
    def default_content(self, content: str) -> None:
        with self._state.lock:
            self._state.default_content = content

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self._state.lock:
            return len(self._state.queue)


def serve(default_content: str = "ok") -> Iterator[FakeOpenAI]:
    """Generator body for a pytest fixture: ``yield from serve()``."""
    with FakeOpenAI(default_content) as fake:
        yield fake


# -- the HTTP side --------------------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def completion_body(content: str, *, model: str, number: int, prompt_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` object as OpenAI returns it."""
    completion_tokens = _words(content)
    return {
        "id": f"chatcmpl-fake{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def stream_chunks(
    content: str, *, model: str, number: int, prompt_tokens: int, chunk_chars: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer: role, content pieces, stop, usage."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield chunk({"role": "assistant", "content": "", "refusal": None}, None)
    for start in range(0, len(content), max(chunk_chars, 1)):
        yield chunk({"content": content[start : start + chunk_chars]}, None)
    yield chunk({}, "stop")
    if include_usage:
        completion_tokens = _words(content)
        yield {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _handler_class(state: _State, chunk_chars: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no handler thread lingers on a kept-alive socket.
        protocol_version = "HTTP/1.0"
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows the tests' own output, not an access log."""

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path not in PATHS:
                self._send_json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                self._send_json(400, {"error": {"message": f"bad JSON: {exc}", "type": "invalid_request_error"}})
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer, number = state.take(RecordedRequest(path=path, headers=headers, body=body))
            if state.latency_s:
                time.sleep(state.latency_s)
            if isinstance(answer, ErrorReply):
                extra = {"Retry-After": str(answer.retry_after_s)} if answer.retry_after_s is not None else {}
                extra.update(answer.headers)
                self._send_json(answer.status, answer.body(), extra)
                return
            model = str(body.get("model", ""))
            prompt_tokens = sum(_words(str(m.get("content") or "")) for m in body.get("messages", []))
            if body.get("stream"):
                options = body.get("stream_options") or {}
                self._send_stream(
                    stream_chunks(
                        answer,
                        model=model,
                        number=number,
                        prompt_tokens=prompt_tokens,
                        chunk_chars=chunk_chars,
                        include_usage=bool(options.get("include_usage")),
                    )
                )
                return
            if isinstance(answer, ToolCallsReply):
                body_out = completion_body("", model=model, number=number, prompt_tokens=prompt_tokens)
                message = body_out["choices"][0]["message"]
                message["content"] = None
                message["tool_calls"] = [
                    {
                        "id": f"call_{number}_{i}",
                        "type": "function",
                        "function": {"name": n, "arguments": json.dumps(a)},
                    }
                    for i, (n, a) in enumerate(answer.calls)
                ]
                body_out["choices"][0]["finish_reason"] = "tool_calls"
                self._send_json(200, body_out)
                return
            self._send_json(200, completion_body(answer, model=model, number=number, prompt_tokens=prompt_tokens))

        def _send_json(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(self, chunks: Iterator[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for item in chunks:
                self.wfile.write(f"data: {json.dumps(item)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler
