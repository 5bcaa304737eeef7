"""Tools that must run on a particular machine: served by an actor, called over NATS.

A node's tool entry ``{name: file_read, actor: gpu-box}`` makes the worker send the call as a request
to ``ca.tool.gpu-box.file_read``; ``ca-actors agent --name gpu-box --serve-tools`` answers it there,
in its own workspace, with the same built-in tools.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from actors.tools import ToolContext, ToolError, get_tool, run_tool
from bus import Bus, subjects

log = structlog.get_logger(__name__)


class ToolHost:
    """Answers tool calls addressed to `actor` (a queue group: several processes may share a name)."""

    def __init__(self, bus: Bus, actor: str, context: ToolContext) -> None:
        self._bus = bus
        self._actor = actor
        self._context = context
        self._tasks: set[asyncio.Task[None]] = set()

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
            args = json.loads(msg.data or b"{}")
            if not isinstance(args, dict):
                raise ToolError("tool arguments must be a JSON object")
            answer: dict[str, Any] = {"result": await run_tool(get_tool(name), args, self._context)}
        except (ToolError, json.JSONDecodeError) as exc:
            answer = {"error": str(exc)}
        log.info("tool_host.call", tool=name, error=answer.get("error"))
        if msg.reply:
            await msg.respond(json.dumps(answer, default=str).encode())


class RemoteToolClient:
    """Calls a tool on the actor that must run it."""

    def __init__(self, bus: Bus, *, timeout_s: float = 60.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def __call__(self, actor: str, name: str, args: Mapping[str, Any]) -> Any:
        try:
            subject = subjects.tool_call(actor, name)
            reply = await self._bus.nc.request(subject, json.dumps(dict(args)).encode(), timeout=self._timeout_s)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc
        except NoRespondersError:
            raise ToolError(
                f"no actor {actor!r} serves tool {name}: start one with `ca-actors agent --name {actor} --serve-tools`"
            ) from None
        except (NatsTimeoutError, TimeoutError):
            raise ToolError(f"actor {actor!r} did not answer tool {name} within {self._timeout_s:g}s") from None
        answer: dict[str, Any] = json.loads(reply.data)
        if "error" in answer:
            raise ToolError(f"on {actor}: {answer['error']}")
        return answer.get("result")
