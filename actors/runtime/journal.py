"""Results of paid or side-effecting calls, kept by a key that comes from the step, not the delivery.

A step may run more than once: its worker died or froze past AckWait, NATS restarted, a reply was
lost. Every provider call and tool call of a step is journaled under (run, step, call number, what
was asked), so the step's next delivery is answered from here and nobody pays a provider, or writes
a file, twice for a call that completed. Entries expire with the bucket's TTL (`bus.topology`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import structlog
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

log = structlog.get_logger(__name__)


def journal_key(*parts: object) -> str:
    """A bucket key for the call named by `parts` (a hash: run ids and tool arguments may hold any character)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


class Journal:
    """Reads and writes ride out a NATS outage (up to `patience_s`): a call answered while the server
    was away is still journaled when it returns, before anyone can ask for it again."""

    def __init__(self, kv: KeyValue, *, patience_s: float = 30.0) -> None:
        self._kv = kv
        self._patience_s = patience_s

    async def get(self, key: str) -> bytes | None:
        """What the call under `key` returned, or None when it has not completed (or expired)."""
        deadline = time.monotonic() + self._patience_s
        while True:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                return None
            except Exception as exc:  # noqa: BLE001 - NATS away: wait for it, then give up (a repeated call)
                if time.monotonic() >= deadline:
                    log.warning("journal.read_failed", error=str(exc))
                    return None
                await asyncio.sleep(0.5)
                continue
            return entry.value or None

    async def put(self, key: str, value: bytes) -> None:
        """Keep what the call under `key` returned (a failure costs a repeat on redelivery, nothing else)."""
        deadline = time.monotonic() + self._patience_s
        while True:
            try:
                await self._kv.put(key, value)
                return
            except Exception as exc:  # noqa: BLE001 - as above
                if time.monotonic() >= deadline:
                    log.warning("journal.write_failed", error=str(exc))
                    return
                await asyncio.sleep(0.5)

    async def size(self) -> tuple[int, int]:
        """Entries and bytes the journal holds now."""
        status = await self._kv.status()
        info = status.stream_info.state
        return info.messages, info.bytes
