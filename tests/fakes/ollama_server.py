"""A local Ollama server for tests: Ollama's own wire format, scripted answers, recorded requests.

It answers what litellm's ``ollama_chat/<model>`` provider and ``ca-actors up``'s discovery call:

* ``POST /api/chat``: one JSON object, or NDJSON lines when ``"stream": true`` (each line with
  ``message`` and ``done``; the last with ``done: true``, ``done_reason``, the token counts
  ``prompt_eval_count`` / ``eval_count`` and the ``*_duration`` fields in nanoseconds). Tool calls
  come back as Ollama sends them: ``message.tool_calls: [{"function": {"name", "arguments": {...}}}]``,
  arguments an object, not a JSON string.
* ``GET /api/tags``: the pulled models. ``POST /api/show``: one model's details (its ``template``
  mentions tools, so litellm passes ``tools`` through instead of prompting for JSON).
* ``GET /api/version`` and ``GET /`` ("Ollama is running").

Errors use Ollama's body, ``{"error": "..."}``. Nothing here reaches the internet. Usage::

    with FakeOllama(default_content="hi") as fake:
        fake.script('{"answer": 1}', OllamaError.server_error())
        ...  # point litellm at api_base=fake.base_url
        assert fake.chat_requests[0].model == "llama3.2"
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

CHAT = "/api/chat"
TAGS = "/api/tags"
SHOW = "/api/show"
VERSION = "/api/version"
OLLAMA_VERSION = "0.12.6"

# A chat template that mentions tools: litellm reads `"tools" in template` as "supports function calling".
TOOLS_TEMPLATE = (
    "{{- if .Tools }}<|start_header_id|>system<|end_header_id|>\n\n"
    "You have access to the following functions: {{ range .Tools }}{{ . }}{{ end }}<|eot_id|>{{- end }}"
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{- end }}"
)
PLAIN_TEMPLATE = "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}{{- end }}"


@dataclass(frozen=True)
class OllamaError:
    """An HTTP error answered instead of a chat reply, with Ollama's ``{"error": "..."}`` body."""

    status: int
    message: str

    @classmethod
    def server_error(cls) -> Self:
        return cls(500, "llama runner process has terminated: exit status 2")

    @classmethod
    def model_not_found(cls, model: str) -> Self:
        return cls(404, f'model "{model}" not found, try pulling it first')

    @classmethod
    def overloaded(cls) -> Self:
        return cls(503, "server busy, please try again.  maximum pending requests exceeded")

    def body(self) -> dict[str, Any]:
        return {"error": self.message}


@dataclass(frozen=True)
class ToolCallsReply:
    """An assistant turn that calls tools: [(name, arguments), ...] in Ollama's ``tool_calls`` format."""

    calls: tuple[tuple[str, dict[str, Any]], ...]

    def wire(self) -> list[dict[str, Any]]:
        return [{"function": {"index": i, "name": n, "arguments": a}} for i, (n, a) in enumerate(self.calls)]


Scripted = str | OllamaError | ToolCallsReply


@dataclass(frozen=True)
class FakeModel:
    """A pulled model as ``/api/tags`` and ``/api/show`` describe it."""

    name: str
    tools: bool = True
    context_length: int = 131072
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"

    @property
    def base(self) -> str:
        """The name without ``:latest`` (Ollama accepts both)."""
        return self.name.removesuffix(":latest")

    def tag(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": "2025-01-01T00:00:00.000000000Z",
            "size": 2019393189,
            "digest": hashlib.sha256(self.name.encode()).hexdigest(),
            "details": self._details(),
        }

    def show(self) -> dict[str, Any]:
        return {
            "license": "",
            "modelfile": f"FROM {self.name}\n",
            "parameters": 'stop "<|eot_id|>"',
            "template": TOOLS_TEMPLATE if self.tools else PLAIN_TEMPLATE,
            "details": self._details(),
            "model_info": {
                "general.architecture": self.family,
                "general.parameter_count": 3212749888,
                f"{self.family}.context_length": self.context_length,
                f"{self.family}.embedding_length": 3072,
            },
            "capabilities": ["completion", "tools"] if self.tools else ["completion"],
            "modified_at": "2025-01-01T00:00:00.000000000Z",
        }

    def _details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received: method, path, headers (lower-cased names) and the JSON body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model") or self.body.get("name") or "")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.body.get("options") or {})

    @property
    def stream(self) -> bool:
        # Ollama streams unless told otherwise.
        return bool(self.body.get("stream", True))


@dataclass
class _State:
    default_content: str
    models: list[FakeModel]
    queue: deque[Scripted] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def take(self) -> Scripted:
        with self.lock:
            return self.queue.popleft() if self.queue else self.default_content

    def find(self, name: str) -> FakeModel | None:
        with self.lock:
            for model in self.models:
                if name in (model.name, model.base):
                    return model
        return None


class FakeOllama:
    """An Ollama server on 127.0.0.1 and a free port, served from a background thread.

    Args:
        default_content: the assistant content answered when the script queue is empty.
        models: the pulled models (names, or `FakeModel`s); an empty list is an Ollama with nothing pulled.
        stream_chunk_chars: how many characters of content each streamed line carries.
    """

    def __init__(
        self,
        default_content: str = "ok",
        *,
        models: Sequence[str | FakeModel] = ("llama3.2:latest",),
        stream_chunk_chars: int = 4,
    ) -> None:
        self._state = _State(default_content, [m if isinstance(m, FakeModel) else FakeModel(m) for m in models])
        self._chunk_chars = stream_chunk_chars
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self._state, self._chunk_chars))
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
        """Ollama's address, e.g. ``http://127.0.0.1:54321``: litellm's ``api_base`` and ``OLLAMA_URL``."""
        if self._server is None:
            raise RuntimeError("the fake Ollama server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    api_base = base_url

    def script(self, *answers: Scripted) -> None:
        """Queue ``/api/chat`` answers, used in order: a content string, `ToolCallsReply` or `OllamaError`."""
        with self._state.lock:
            self._state.queue.extend(answers)

    @property
    def models(self) -> list[FakeModel]:
        with self._state.lock:
            return list(self._state.models)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far (any path), oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The ``POST /api/chat`` requests only."""
        return [r for r in self.requests if r.path == CHAT]

    def paths(self) -> list[str]:
        """``"METHOD /path"`` of every request, oldest first."""
        return [f"{r.method} {r.path}" for r in self.requests]

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        with self._state.lock:
            return len(self._state.queue)


def serve(default_content: str = "ok", **kwargs: Any) -> Iterator[FakeOllama]:
    """Generator body for a pytest fixture: ``yield from serve()``."""
    with FakeOllama(default_content, **kwargs) as fake:
        yield fake


# -- Ollama's bodies ------------------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def final_fields(*, prompt_tokens: int, completion_tokens: int, done_reason: str = "stop") -> dict[str, Any]:
    """What Ollama adds to its last object: why it stopped, token counts and durations (nanoseconds)."""
    prompt_eval_ns = 1_000_000 * max(prompt_tokens, 1)
    eval_ns = 20_000_000 * max(completion_tokens, 1)
    load_ns = 2_154_458
    return {
        "done": True,
        "done_reason": done_reason,
        "total_duration": load_ns + prompt_eval_ns + eval_ns,
        "load_duration": load_ns,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_eval_ns,
        "eval_count": completion_tokens,
        "eval_duration": eval_ns,
    }


def _message(answer: str | ToolCallsReply) -> dict[str, Any]:
    if isinstance(answer, ToolCallsReply):
        return {"role": "assistant", "content": "", "tool_calls": answer.wire()}
    return {"role": "assistant", "content": answer}


def _completion_tokens(answer: str | ToolCallsReply) -> int:
    if isinstance(answer, ToolCallsReply):
        return sum(_words(json.dumps({"name": n, "arguments": a})) for n, a in answer.calls)
    return _words(answer)


def chat_body(answer: str | ToolCallsReply, *, model: str, prompt_tokens: int) -> dict[str, Any]:
    """A non-streamed ``/api/chat`` answer."""
    return {
        "model": model,
        "created_at": _now(),
        "message": _message(answer),
        **final_fields(prompt_tokens=prompt_tokens, completion_tokens=_completion_tokens(answer)),
    }


def chat_lines(
    answer: str | ToolCallsReply, *, model: str, prompt_tokens: int, chunk_chars: int
) -> Iterator[dict[str, Any]]:
    """The NDJSON objects of a streamed ``/api/chat`` answer: content pieces (or the tool calls), then done."""
    if isinstance(answer, ToolCallsReply):
        yield {"model": model, "created_at": _now(), "message": _message(answer), "done": False}
    else:
        for start in range(0, len(answer), max(chunk_chars, 1)):
            piece = answer[start : start + chunk_chars]
            yield {"model": model, "created_at": _now(), "message": _message(piece), "done": False}
    yield {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        **final_fields(prompt_tokens=prompt_tokens, completion_tokens=_completion_tokens(answer)),
    }


def _handler_class(state: _State, chunk_chars: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no handler thread lingers on a kept-alive socket.
        protocol_version = "HTTP/1.0"
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows the tests' own output, not an access log."""

        def do_GET(self) -> None:
            path = self._record("GET", b"")
            if path == TAGS:
                with state.lock:
                    tags = [m.tag() for m in state.models]
                self._send_json(200, {"models": tags})
            elif path == VERSION:
                self._send_json(200, {"version": OLLAMA_VERSION})
            elif path == "/":
                self._send_text(200, "Ollama is running")
            else:
                self._send_text(404, "404 page not found")

        def do_HEAD(self) -> None:
            self._record("HEAD", b"")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                self._record("POST", raw)
                self._send_json(400, {"error": f"invalid character in JSON: {exc}"})
                return
            if not isinstance(body, dict):
                self._record("POST", raw)
                self._send_json(400, {"error": "json: cannot unmarshal into Go value of type api.ChatRequest"})
                return
            path = self._record("POST", body)
            if path == CHAT:
                self._chat(body)
            elif path == SHOW:
                name = str(body.get("model") or body.get("name") or "")
                found = state.find(name)
                if found is None:
                    self._send_json(404, OllamaError.model_not_found(name).body())
                else:
                    self._send_json(200, found.show())
            else:
                self._send_text(404, "404 page not found")

        def _chat(self, body: dict[str, Any]) -> None:
            model = str(body.get("model") or "")
            if not model:
                self._send_json(400, {"error": "model is required"})
                return
            answer = state.take()
            if isinstance(answer, OllamaError):
                self._send_json(answer.status, answer.body())
                return
            if state.find(model) is None:
                self._send_json(404, OllamaError.model_not_found(model).body())
                return
            prompt_tokens = sum(_words(str(m.get("content") or "")) for m in body.get("messages", []))
            if body.get("stream", True):
                self._send_ndjson(chat_lines(answer, model=model, prompt_tokens=prompt_tokens, chunk_chars=chunk_chars))
            else:
                self._send_json(200, chat_body(answer, model=model, prompt_tokens=prompt_tokens))

        def _record(self, method: str, body: Any) -> str:
            path = self.path.split("?", 1)[0]
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorded = body if isinstance(body, dict) else {"_raw": bytes(body).decode(errors="replace")}
            state.record(RecordedRequest(method=method, path=path, headers=headers, body=recorded))
            return path

        def _send_json(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_text(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_ndjson(self, lines: Iterator[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            for item in lines:
                self.wfile.write(json.dumps(item).encode() + b"\n")
                self.wfile.flush()

    return Handler
