"""Tools that must run on a particular machine: served by an actor, called over NATS.

A node's tool entry ``{name: file_read, actor: gpu-box}`` makes the worker send the call as a request
to ``ca.tool.gpu-box.file_read``; ``ca-actors agent --name gpu-box --serve-tools`` answers it there,
in its own workspace, with the same built-in tools. It runs only the tools that the flows it serves
pin to it: a call of any other built-in (``file_write``, ``env_vars``...) is refused, whoever sends it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import structlog
from nats.aio.msg import Msg
from pydantic import ConfigDict, RootModel, ValidationError

from actors.tools import ToolContext, ToolError, get_tool, run_tool
from bus import Bus, NoResponderError, RequestTimeoutError, SparseWireModel, subjects

log = structlog.get_logger(__name__)


class ToolArguments(RootModel[dict[str, Any]]):
    """A call of a tool on ``ca.tool.<actor>.<tool>``: its arguments, one JSON object."""

    model_config = ConfigDict(frozen=True)


class ToolAnswer(SparseWireModel):
    """``{"result": ...}``: what the tool returned (JSON), or ``{"error": ...}``."""

    result: Any = None
    error: str | None = None

    def _on_the_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"result": self.result} if self.error is None else {"error": self.error}


class ToolHost:
    """Answers tool calls addressed to `actor` (a queue group: several processes may share a name)."""

    def __init__(self, bus: Bus, actor: str, context: ToolContext) -> None:
        self._bus = bus
        self._actor = actor
        self._context = context
        self._tasks: set[asyncio.Task[None]] = set()
        self._pinned: set[str] = set()

    def pin(self, tools: set[str]) -> None:
        """Serve these tools too (those a flow it serves pins to this actor)."""
        if tools - self._pinned:
            log.info("tool_host.pinned", tools=sorted(tools - self._pinned))
        self._pinned |= tools

    async def start(self) -> None:
        await self._bus.subscribe(subjects.tools_of(self._actor), self._on_call, queue=f"tools-{self._actor}")

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_call(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        name = msg.subject.rsplit(".", 1)[-1]
        try:
            if name not in self._pinned:
                raise ToolError(f"tool {name} is not pinned to actor {self._actor} by any flow it serves")
            args = ToolArguments.model_validate_json(msg.data or b"{}").root
            result = await run_tool(get_tool(name), args, self._context)
            # What JSON cannot carry as it is (a date, a path) travels as its text.
            answer = ToolAnswer(result=json.loads(json.dumps(result, default=str)))
        except ValidationError:
            answer = ToolAnswer(error="tool arguments must be a JSON object")
        except ToolError as exc:
            answer = ToolAnswer(error=str(exc))
        log.info("tool_host.call", tool=name, error=answer.error)
        await self._bus.respond(msg, answer)


class RemoteToolClient:
    """Calls a tool on the actor that must run it."""

    def __init__(self, bus: Bus, *, timeout_s: float = 60.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def __call__(self, actor: str, name: str, args: Mapping[str, Any]) -> Any:
        try:
            subject = subjects.tool_call(actor, name)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc
        try:
            answer = await self._bus.request(subject, ToolArguments(dict(args)), ToolAnswer, timeout_s=self._timeout_s)
        except NoResponderError:
            raise ToolError(
                f"no actor {actor!r} serves tool {name}: start one with `ca-actors agent --name {actor} --serve-tools`"
            ) from None
        except RequestTimeoutError:
            raise ToolError(f"actor {actor!r} did not answer tool {name} within {self._timeout_s:g}s") from None
        if answer.error is not None:
            raise ToolError(f"on {actor}: {answer.error}")
        return answer.result
