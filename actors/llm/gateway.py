"""LLM gateway actor: answers ``ca.llm.complete`` requests in the ``llm-gateway`` queue group.

The only actor that holds provider keys (read from the environment by name) and imports litellm.
Several gateways may run: NATS spreads requests over the queue group.

Pay once: a call of a step is journaled under its call key (run, step, call number, what was asked)
before it is answered. A request whose call completed is answered from the journal; one whose call
is still in flight here (the worker sent it again after a lost reply) waits for that call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from nats.aio.msg import Msg

from actors.flow.llm import LLMReply, LLMRequest
from actors.llm.backend import LLMBackend
from actors.llm.budget import Budgets
from actors.llm.endpoints import EndpointPolicy
from actors.runtime.events import redact_event
from actors.runtime.journal import Journal, journal_key
from actors.runtime.presence import Load
from actors.runtime.redact import Redactor
from bus import Bus, Event, LLMCalledData, LLMFinishedData, new_id, subjects, topology
from configs import BudgetSpec
from configs.errors import BusError

log = structlog.get_logger(__name__)

QUEUE = "llm-gateway"


class LLMGateway:
    def __init__(
        self, bus: Bus, backend: LLMBackend, *, max_concurrency: int = 64, endpoints: EndpointPolicy | None = None
    ) -> None:
        """Args:
        endpoints: Which (api_base, api_key_env) pairs a request may name; default: those its flow's
            published plans declare.
        """
        self._bus = bus
        self._backend = backend
        self._endpoints = endpoints or EndpointPolicy(bus.kv(topology.PLANS))
        self._max = max_concurrency
        self._budgets = Budgets(bus.kv(topology.BUDGETS))
        self._journal = Journal(bus.kv(topology.JOURNAL))
        self._calls: dict[str, asyncio.Future[LLMReply]] = {}  # keyed calls in flight here
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        # The process that holds the provider keys: they (and any secret in a message) never reach an event.
        self._redact = Redactor()

    async def run(self, ready: Callable[[], None]) -> None:
        """Answer requests until `stop()`, then finish the ones in flight."""
        await self._backend.warm()
        await self._bus.subscribe(subjects.LLM_COMPLETE, self._on_request, queue=QUEUE)
        ready()
        await self._stopping.wait()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    def serves(self) -> list[str]:
        return [subjects.LLM_COMPLETE]

    def capabilities(self) -> list[str]:
        return []

    def load(self) -> Load:
        """Requests being answered now, of at most `max_concurrency`."""
        return Load(in_flight=min(len(self._tasks), self._max), max=self._max)

    async def _complete_within_budget(self, request: LLMRequest) -> LLMReply:
        refused = await self._endpoints.refusal(request)
        if refused is not None:
            return LLMReply(model=request.model, error=refused, error_kind="permanent")
        if not request.budget or not request.run_id:
            return await self._backend.complete(request)
        spec = BudgetSpec.model_validate(request.budget)
        reservation = await self._budgets.reserve(request, spec)
        if isinstance(reservation, str):
            log.warning("llm_gateway.budget_refused", run_id=request.run_id, node=request.node, reason=reservation)
            return LLMReply(model=request.model, error=f"budget exceeded: {reservation}", error_kind="budget")
        reply = await self._backend.complete(request)
        await self._budgets.settle(reservation, reply)
        return reply

    async def _event(self, request: LLMRequest, data: LLMCalledData | LLMFinishedData) -> None:
        """LLM calls of a run are events of that run (the observer makes them MLflow spans)."""
        if not request.run_id or not request.flow:
            return
        try:
            event = Event.of(
                redact_event(data, self._redact),
                run_id=request.run_id,
                flow=request.flow,
                node=request.node or None,
                step_id=request.step_id or None,
                sender=self._bus.name,
            )
            await self._bus.publish_nowait(subjects.event(request.run_id, data.KIND), event)
        except (ValueError, BusError) as exc:  # an event never stops the answer
            log.warning("llm_gateway.event_failed", error=str(exc))

    async def _on_request(self, msg: Msg) -> None:
        # A subscription's callbacks run one at a time: hand each request to its own task at once
        # (waiting for a slot here would hold up every later request behind a busy one).
        task = asyncio.create_task(self._answer_when_free(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_when_free(self, msg: Msg) -> None:
        async with self._slots:
            await self._answer(msg)

    async def _answer(self, msg: Msg) -> None:
        try:
            request = LLMRequest.model_validate_json(msg.data)
        except ValueError as exc:
            reply = LLMReply(error=f"bad LLM request: {exc}", error_kind="permanent")
        else:
            reply = await self._call_once(request)
        try:
            await self._bus.respond(msg, reply)
        except Exception as exc:  # noqa: BLE001 - the requester gave up; nothing to answer
            log.warning("llm_gateway.respond_failed", error=str(exc))

    async def _call_once(self, request: LLMRequest) -> LLMReply:
        """The reply to `request`: journaled if its call completed before, else the provider's (journaled)."""
        key = call_key(request)
        if key is None:
            return await self._call(request)
        running = self._calls.get(key)
        if running is not None:  # sent again while we are still asking the provider
            return await asyncio.shield(running)
        kept = await self._journal.get(key)
        if kept is not None:
            log.info("llm_gateway.journaled", run_id=request.run_id, node=request.node, step_id=request.step_id)
            return LLMReply.model_validate_json(kept).model_copy(update={"cost_usd": 0.0, "cache_hit": True})
        future: asyncio.Future[LLMReply] = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            reply = await self._call(request)
            if reply.ok:
                await self._journal.put(key, reply.model_dump_json().encode())
            future.set_result(reply)
            return reply
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters (if any) see it, nobody else must
            raise
        finally:
            del self._calls[key]

    async def _call(self, request: LLMRequest) -> LLMReply:
        call = new_id()  # pairs this call's two events
        messages = [_clipped(m.model_dump(mode="json", exclude_none=True)) for m in request.messages]
        called = LLMCalledData(call=call, model=request.model, attempt=request.attempt, messages=messages)
        await self._event(request, called)
        reply = await self._complete_within_budget(request)
        finished = LLMFinishedData(
            call=call,
            model=reply.model or request.model,
            ok=reply.ok,
            tokens_in=reply.usage.prompt_tokens,
            tokens_out=reply.usage.completion_tokens,
            cost_usd=reply.cost_usd,
            latency_ms=round(reply.latency_ms, 3),
            cache_hit=reply.cache_hit,
            tool_calls=[c.name for c in reply.tool_calls],
            content=_clip(reply.content),
            error=reply.error,
        )
        await self._event(request, finished)
        return reply


def call_key(request: LLMRequest) -> str | None:
    """The journal key of a call made by a step: its run, step, turn and what it asks; None outside a run."""
    if not request.run_id or not request.step_id:
        return None
    return journal_key("llm", request.run_id, request.step_id, request.attempt, request.cache_key())


# Text kept per message in events: a long prompt must not push an event past NATS's payload limit.
EVENT_TEXT_CHARS = 16_000


def _clip(text: str) -> str:
    if len(text) <= EVENT_TEXT_CHARS:
        return text
    return f"{text[:EVENT_TEXT_CHARS]}… [{len(text) - EVENT_TEXT_CHARS} more characters]"


def _clipped(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    return {**message, "content": _clip(content)} if isinstance(content, str) else message
