"""A node worker's way to the memory actor: requests on ``ca.memory.*``."""

from __future__ import annotations

import json
from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel

from actors.flow.memory import MemoryRequest, MemoryUnavailable, MemoryWrite
from bus import Bus, subjects


class MemoryClient:
    """Memory over the bus, for node workers."""

    def __init__(self, bus: Bus, *, timeout_s: float = 10.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def _ask(self, subject: str, body: BaseModel) -> dict[str, Any]:
        try:
            reply = await self._bus.nc.request(subject, body.model_dump_json().encode(), timeout=self._timeout_s)
        except NoRespondersError:
            raise MemoryUnavailable("no memory actor is running (`ca-actors up` starts one)") from None
        except (NatsTimeoutError, TimeoutError):
            raise MemoryUnavailable(f"the memory actor did not answer within {self._timeout_s:g}s") from None
        answer: dict[str, Any] = json.loads(reply.data)
        if "error" in answer:
            raise MemoryUnavailable(str(answer["error"]))
        return answer

    async def read(self, request: MemoryRequest) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = (await self._ask(subjects.MEMORY_READ, request))["records"]
        return records

    async def write(self, record: MemoryWrite) -> None:
        await self._ask(subjects.MEMORY_WRITE, record)
