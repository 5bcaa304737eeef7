"""`LLMClient` over the bus: a request on ``ca.llm.complete`` answered by any LLM gateway."""

from __future__ import annotations

from actors.flow.llm import LLMReply, LLMRequest
from bus import Bus, NoResponderError, RequestTimeoutError, subjects


class BusLLMClient:
    """Asks whichever gateway of the ``llm-gateway`` queue group answers first."""

    def __init__(self, bus: Bus, *, timeout_s: float = 120.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def complete(self, request: LLMRequest) -> LLMReply:
        timeout = (request.timeout_s or self._timeout_s) + 5.0
        try:
            return await self._bus.request(subjects.LLM_COMPLETE, request, LLMReply, timeout_s=timeout)
        except NoResponderError:
            return LLMReply(model=request.model, error="no LLM gateway is running", error_kind="unreachable")
        except RequestTimeoutError:
            return LLMReply(
                model=request.model, error=f"LLM gateway did not answer in {timeout:.0f}s", error_kind="transient"
            )
