"""LLM gateway actor: answers ``ca.llm.complete`` requests in the ``llm-gateway`` queue group.

The only actor that holds provider keys (read from the environment by name) and imports litellm.
Several gateways may run: NATS spreads requests over the queue group.
"""

from __future__ import annotations

import asyncio

import structlog
from nats.aio.msg import Msg

from actors.llm_backend import LLMBackend
from actors.llm_types import LLMReply, LLMRequest
from actors.presence import Load
from bus import Bus, subjects

log = structlog.get_logger(__name__)

QUEUE = "llm-gateway"


class LLMGateway:
    def __init__(self, bus: Bus, backend: LLMBackend, *, max_concurrency: int = 64) -> None:
        self._bus = bus
        self._backend = backend
        self._max = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._bus.subscribe(subjects.LLM_COMPLETE, self._on_request, queue=QUEUE)

    def load(self) -> Load:
        """Requests being answered now, of at most `max_concurrency`."""
        return Load(in_flight=len(self._tasks), max=self._max)

    async def stop(self) -> None:
        """Finish the requests in flight."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_request(self, msg: Msg) -> None:
        # A subscription's callbacks run one at a time: hand each request to its own task.
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self._slots.release())

    async def _answer(self, msg: Msg) -> None:
        try:
            request = LLMRequest.model_validate_json(msg.data)
        except ValueError as exc:
            reply = LLMReply(ok=False, error=f"bad LLM request: {exc}")
        else:
            reply = await self._backend.complete(request)
        if msg.reply:
            try:
                await msg.respond(reply.model_dump_json().encode())
            except Exception as exc:  # noqa: BLE001 - the requester gave up; nothing to answer
                log.warning("llm_gateway.respond_failed", error=str(exc))
