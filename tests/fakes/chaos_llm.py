"""A stateless OpenAI-compatible fake for chaos tests: every step calls a side-effecting tool once, then answers.

Whatever process asks (any gateway, restarted or not), the answer depends only on the conversation: no
tool result yet → one ``file_write`` call appending the step's marker (the first line of its prompt,
unique per run and node) to ``effects.log``; a tool result → a JSON answer matching the node's output
schema. So a step re-run from scratch repeats its side effect, and the effects file counts how many
times each step really ran.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from actors.llm.mock import mock_output
from tests.fakes.openai_server import completion_body

EFFECTS = "effects.log"
_SCHEMA_IN_PROMPT = re.compile(r"JSON Schema:\s*(\{.*\})", re.DOTALL)


@dataclass
class ChaosLLM:
    """Where the fake listens, and how many requests it answered."""

    api_base: str
    latency_s: float
    answered: int = 0


def _schema(body: dict[str, Any]) -> dict[str, Any]:
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema")
    if isinstance(schema, dict):
        return schema
    for message in body.get("messages", []):
        found = _SCHEMA_IN_PROMPT.search(str(message.get("content") or ""))
        if found:
            parsed: dict[str, Any] = json.loads(found.group(1))
            return parsed
    return {"type": "object", "properties": {}}


def _prompt(body: dict[str, Any]) -> str:
    users = [str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == "user"]
    return users[0] if users else ""


def answer(body: dict[str, Any], number: int) -> dict[str, Any]:
    """The chat completion for a request body (pure: the same conversation, the same answer)."""
    model = str(body.get("model", ""))
    messages = body.get("messages", [])
    if any(m.get("role") == "tool" for m in messages):
        prompt = _prompt(body)
        value = mock_output(_schema(body), node="chaos", prompt=prompt)
        return completion_body(json.dumps(value), model=model, number=number, prompt_tokens=len(prompt.split()))
    marker = _prompt(body).splitlines()[0] if _prompt(body) else "?"
    out = completion_body("", model=model, number=number, prompt_tokens=len(marker.split()))
    message = out["choices"][0]["message"]
    message["content"] = None
    arguments = {"path": EFFECTS, "mode": "append", "content": marker + "\n"}
    message["tool_calls"] = [
        {
            "id": f"call_{number}",
            "type": "function",
            "function": {"name": "file_write", "arguments": json.dumps(arguments)},
        }
    ]
    out["choices"][0]["finish_reason"] = "tool_calls"
    return out


@contextmanager
def serve(latency_s: float = 0.15) -> Iterator[ChaosLLM]:
    """Run the fake on a free port of 127.0.0.1 until the block ends."""
    lock = threading.Lock()
    state = ChaosLLM(api_base="", latency_s=latency_s)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with lock:
                state.answered += 1
                number = state.answered
            time.sleep(state.latency_s)
            data = json.dumps(answer(body, number)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]  # clients killed mid-call
    state.api_base = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
