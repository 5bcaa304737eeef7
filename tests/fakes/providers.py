"""Local fakes of Anthropic's Messages API and Gemini's ``generateContent``, speaking their real wire formats.

litellm's own Anthropic and Gemini code paths run against them (``api_base`` points here), so a test
exercises the request it builds and the response it parses, with no internet. Usage::

    with FakeAnthropic() as fake:
        fake.script(Overloaded(retry_after="1"), "Hello", ToolUse((("calculator", {"expression": "2+2"}),)))
        ...  # litellm.acompletion(model="anthropic/claude-3-5-haiku-20241022", api_base=fake.api_base, ...)
        assert fake.requests[1].at - fake.requests[0].at >= 1.0

Each answer is taken in order from the script (then `default` forever): a text, a `ToolUse` (tool_use
blocks / functionCall parts), a `Structured` value (a forced tool's input for Anthropic, JSON text for
Gemini's ``responseSchema``) or a `ProviderError` (status, the provider's error body, headers such as
``retry-after``). Every request is recorded with the wall-clock time it arrived.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self


@dataclass(frozen=True)
class ToolUse:
    """An assistant turn that calls tools: ((name, arguments), ...)."""

    calls: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class Structured:
    """A structured answer: the JSON value the schema asked for."""

    value: Any


@dataclass(frozen=True)
class ProviderError:
    """An HTTP error in the provider's own error format; `headers` e.g. ``{"retry-after": "2"}``."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


def RateLimited(**headers: str) -> ProviderError:
    return ProviderError(429, {k.replace("_", "-"): v for k, v in headers.items()})


def Unavailable(**headers: str) -> ProviderError:
    return ProviderError(503, {k.replace("_", "-"): v for k, v in headers.items()})


def Overloaded(**headers: str) -> ProviderError:
    return ProviderError(529, {k.replace("_", "-"): v for k, v in headers.items()})


Answer = str | ToolUse | Structured | ProviderError


@dataclass(frozen=True)
class Received:
    """One request: its path, headers (lower-case names), JSON body and arrival time (``time.time()``)."""

    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    at: float


class _Fake(ABC):
    """A threaded HTTP server on 127.0.0.1 that answers POSTs from a script."""

    def __init__(self, default: Answer = "ok") -> None:
        self._default = default
        self._queue: deque[Answer] = deque()
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what tests use ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the fake is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._queue.extend(answers)

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- what each provider defines ---------------------------------------------------------------

    @abstractmethod
    def route(self, path: str) -> bool:
        """Whether `path` is the provider's endpoint."""

    @abstractmethod
    def reply(self, answer: Answer, received: Received, number: int) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        """Status, JSON body and headers of `answer` in the provider's format."""

    # -- the HTTP side ----------------------------------------------------------------------------

    def _take(self, received: Received) -> tuple[Answer, int]:
        with self._lock:
            self._requests.append(received)
            answer = self._queue.popleft() if self._queue else self._default
            return answer, len(self._requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: no lingering handler threads
            timeout = 10

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                at = time.time()
                path = self.path.split("?", 1)[0]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not fake.route(path):
                    self._send(404, {"error": {"message": f"no route {path}"}}, {})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = Received(path=path, headers=headers, body=json.loads(raw or b"{}"), at=at)
                answer, number = fake._take(received)
                self._send(*fake.reply(answer, received, number))

            def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _words(value: Any) -> int:
    return len(json.dumps(value).split()) if not isinstance(value, str) else len(value.split())


class FakeAnthropic(_Fake):
    """``POST /v1/messages`` as Anthropic answers it (content blocks, tool_use, usage, error types)."""

    _ERRORS: ClassVar[dict[int, str]] = {
        429: "rate_limit_error",
        529: "overloaded_error",
        503: "api_error",
        500: "api_error",
    }

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1/messages"

    def route(self, path: str) -> bool:
        return path == "/v1/messages"

    def reply(self, answer: Answer, received: Received, number: int) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        if isinstance(answer, ProviderError):
            kind = self._ERRORS.get(answer.status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
            return answer.status, body, {"request-id": f"req_fake{number}", **answer.headers}
        body = received.body
        forced = body.get("tool_choice") or {}
        if isinstance(answer, Structured) and forced.get("type") == "tool":
            blocks: list[dict[str, Any]] = [
                {"type": "tool_use", "id": f"toolu_fake{number}", "name": forced["name"], "input": answer.value}
            ]
            stop = "tool_use"
        elif isinstance(answer, Structured):
            blocks, stop = [{"type": "text", "text": json.dumps(answer.value)}], "end_turn"
        elif isinstance(answer, ToolUse):
            blocks = [
                {"type": "tool_use", "id": f"toolu_fake{number}_{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(answer.calls)
            ]
            stop = "tool_use"
        else:
            blocks, stop = [{"type": "text", "text": answer}], "end_turn"
        prompt = sum(_words(m.get("content")) for m in body.get("messages", [])) + _words(body.get("system", ""))
        message = {
            "id": f"msg_fake{number}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": sum(_words(b) for b in blocks)},
        }
        return 200, message, {"request-id": f"req_fake{number}"}


class FakeGemini(_Fake):
    """``POST /v1beta/models/{model}:generateContent`` as Google AI Studio answers it (candidates, parts,
    functionCall, usageMetadata, google.rpc errors)."""

    _STATUS: ClassVar[dict[int, str]] = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 500: "INTERNAL"}

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1beta"

    def route(self, path: str) -> bool:
        return path.startswith("/v1beta/models/") and path.endswith(":generateContent")

    def model_of(self, received: Received) -> str:
        return received.path.removeprefix("/v1beta/models/").removesuffix(":generateContent")

    def reply(self, answer: Answer, received: Received, number: int) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        if isinstance(answer, ProviderError):
            status = self._STATUS.get(answer.status, "UNKNOWN")
            body = {"error": {"code": answer.status, "message": f"fake {status}", "status": status}}
            return answer.status, body, answer.headers
        if isinstance(answer, ToolUse):
            parts: list[dict[str, Any]] = [{"functionCall": {"name": n, "args": a}} for n, a in answer.calls]
        elif isinstance(answer, Structured):
            parts = [{"text": json.dumps(answer.value)}]
        else:
            parts = [{"text": answer}]
        prompt = sum(_words(p.get("text", "")) for c in received.body.get("contents", []) for p in c.get("parts", []))
        out = sum(_words(p) for p in parts)
        candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out}
        body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": self.model_of(received)}
        return 200, body, {}
