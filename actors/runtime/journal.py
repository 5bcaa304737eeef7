"""Results of paid or side-effecting calls, kept by a key that comes from the step, not the delivery.

A step may run more than once: its worker died or froze past AckWait, NATS restarted, a reply was
lost. Every provider call and tool call of a step is journaled under (run, step, call number, what
was asked), so the step's next delivery is answered from here and nobody pays a provider, or writes
a file, twice for a call that completed. Entries expire with the bucket's TTL (`bus.topology`).
"""

from __future__ import annotations

import hashlib
import json

import structlog
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from configs.errors import BusError

log = structlog.get_logger(__name__)


def journal_key(*parts: object) -> str:
    """A bucket key for the call named by `parts` (a hash: run ids and tool arguments may hold any character)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


class Journal:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, key: str) -> bytes | None:
        """What the call under `key` returned, or None when it has not completed (or expired)."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a journal we cannot read only costs a repeated call
            log.warning("journal.read_failed", error=str(exc))
            return None
        return entry.value or None

    async def put(self, key: str, value: bytes) -> None:
        """Keep what the call under `key` returned (a failure costs a repeat on redelivery, nothing else)."""
        try:
            await self._kv.put(key, value)
        except (BusError, Exception) as exc:  # noqa: BLE001 - as above
            log.warning("journal.write_failed", error=str(exc))

    async def size(self) -> tuple[int, int]:
        """Entries and bytes the journal holds now."""
        status = await self._kv.status()
        info = status.stream_info.state
        return info.messages, info.bytes
