"""`LLMClient` over the bus: a request on ``ca.llm.complete`` answered by any LLM gateway."""

from __future__ import annotations

import asyncio

import structlog

from actors.flow.llm import LLMReply, LLMRequest
from bus import Bus, NoResponderError, RequestTimeoutError, subjects

log = structlog.get_logger(__name__)

# A call of a step is asked again after this long without a reply: a reply lost in a NATS outage
# costs at most this, and asking again is free (the gateway answers it from its journal, or from
# the call still in flight).
RESEND_S = 5.0


class BusLLMClient:
    """Asks whichever gateway of the ``llm-gateway`` queue group answers first."""

    def __init__(self, bus: Bus, *, timeout_s: float = 120.0, resend_s: float = RESEND_S) -> None:
        self._bus = bus
        self._timeout_s = timeout_s
        self._resend_s = resend_s

    async def complete(self, request: LLMRequest) -> LLMReply:
        timeout = (request.timeout_s or self._timeout_s) + 5.0
        # Only a call the gateway can journal (one of a step) is safe to send twice.
        keyed = bool(request.run_id and request.step_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sent = 0
        while True:
            wait = min(self._resend_s, deadline - loop.time()) if keyed else timeout
            sent += 1
            try:
                return await self._bus.request(subjects.LLM_COMPLETE, request, LLMReply, timeout_s=wait)
            except NoResponderError:
                return LLMReply(model=request.model, error="no LLM gateway is running", error_kind="unreachable")
            except RequestTimeoutError:
                if not keyed or loop.time() >= deadline - 0.01:
                    return LLMReply(
                        model=request.model,
                        error=f"LLM gateway did not answer in {timeout:.0f}s",
                        error_kind="transient",
                    )
                log.info("llm_client.resend", node=request.node, step_id=request.step_id, sent=sent)
