"""A node worker's way to the memory actor: requests on ``ca.memory.*``."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from actors.flow.memory import MemoryAnswer, MemoryRecords, MemoryRequest, MemoryUnavailable, MemoryWrite, MemoryWritten
from bus import Bus, NoResponderError, RequestTimeoutError, subjects

A = TypeVar("A", bound=MemoryAnswer)


class MemoryClient:
    """Memory over the bus, for node workers."""

    def __init__(self, bus: Bus, *, timeout_s: float = 10.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def _ask(self, subject: str, body: BaseModel, reply: type[A]) -> A:
        try:
            answer = await self._bus.request(subject, body, reply, timeout_s=self._timeout_s)
        except NoResponderError:
            raise MemoryUnavailable("no memory actor is running (`ca-actors up` starts one)") from None
        except RequestTimeoutError:
            raise MemoryUnavailable(f"the memory actor did not answer within {self._timeout_s:g}s") from None
        if answer.error is not None:
            raise MemoryUnavailable(answer.error)
        return answer

    async def read(self, request: MemoryRequest) -> list[dict[str, Any]]:
        return (await self._ask(subjects.MEMORY_READ, request, MemoryRecords)).records

    async def write(self, record: MemoryWrite) -> None:
        await self._ask(subjects.MEMORY_WRITE, record, MemoryWritten)
