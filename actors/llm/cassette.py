"""Record and replay of LLM exchanges (``--record FILE`` / ``--replay FILE``), for offline, free CI runs.

A cassette is a YAML file: a list of exchanges, each the request's identity (a hash of model,
messages, tools, schema and sampling settings), a readable summary of the request, and the reply.
Keys, auth headers and run ids are never stored. Replaying a request that is not in the cassette is
a clear, non-retryable error naming the model and the last message.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import yaml

from actors.flow.llm import LLMReply, LLMRequest


class Cassette:
    def __init__(self, path: Path, mode: Literal["record", "replay"]) -> None:
        self.path = path
        self.mode = mode
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if mode == "replay":
            if not path.exists():
                raise ValueError(f"cassette {path} does not exist (record one with --record)")
            data = yaml.safe_load(path.read_text()) or []
            if not isinstance(data, list):
                raise ValueError(f"cassette {path}: expected a list of exchanges")
            self._entries = {str(e["key"]): e for e in data if isinstance(e, dict) and "key" in e}
        elif path.exists():
            data = yaml.safe_load(path.read_text()) or []
            self._entries = {str(e["key"]): e for e in data if isinstance(e, dict) and "key" in e}

    def replay(self, request: LLMRequest) -> LLMReply:
        entry = self._entries.get(request.cache_key())
        if entry is None:
            last = request.messages[-1].content if request.messages else ""
            return LLMReply(
                model=request.model,
                error=f"not in cassette {self.path}: a request to {request.model} ending with "
                f"{last[:80]!r} (record it again with --record)",
                error_kind="permanent",
            )
        # Cassettes written before `error_kind` carry `ok`/`unreachable`/`budget_exceeded`: LLMReply reads those too.
        reply = LLMReply.model_validate(entry["reply"])
        return reply.model_copy(update={"cache_hit": True})

    def record(self, request: LLMRequest, reply: LLMReply) -> None:
        if not reply.ok:
            return
        key = request.cache_key()
        entry: dict[str, Any] = {
            "key": key,
            "request": {
                "model": request.model,
                "node": request.node,
                "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            },
            "reply": reply.model_dump(mode="json", exclude={"latency_ms", "cache_hit", "error", "error_kind"}),
        }
        with self._lock:
            self._entries[key] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(yaml.safe_dump(list(self._entries.values()), sort_keys=False, allow_unicode=True))
