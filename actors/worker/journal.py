"""The tool-call journal of steps in the ``ca_journal`` bucket: a step re-run after a crash reuses its calls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = structlog.get_logger(__name__)


class KVToolJournal:
    """`actors.flow.node_exec.ToolJournal` on a KV bucket: one key per tool call of a step."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def claim(self, key: str, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        try:
            await self._kv.create(key, json.dumps(entry).encode())
        except KeyWrongLastSequenceError:
            return await self.recall(key) or {}
        except Exception as exc:  # noqa: BLE001 - the bucket unreachable: the call is made unjournaled
            log.warning("worker.journal_failed", key=key, error=str(exc))
        return None

    async def recall(self, key: str) -> Mapping[str, Any] | None:
        try:
            entry = await self._kv.get(key)
        except Exception:  # noqa: BLE001 - not found, or the bucket unreachable: the call is simply made
            return None
        try:
            value = json.loads(entry.value or b"null")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def record(self, key: str, entry: Mapping[str, Any]) -> None:
        try:
            await self._kv.put(key, json.dumps(entry).encode())
        except Exception as exc:  # noqa: BLE001 - the call happened; only its reuse on a re-run is lost
            log.warning("worker.journal_failed", key=key, error=str(exc))
