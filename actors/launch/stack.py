"""Putting actors together: one actor per process, or a whole stack in one process.

`serve_actor` is what each OS process started by ``ca-actors up`` runs (``ca-actors actor KIND``, and
``ca-actors agent``). `LocalStack` runs the scheduler, the LLM gateway, the memory actor, the observer
and worker(s) as tasks of one event loop, each with its own NATS connection, for ``ca-actors run`` and
for tests: the actors still talk only over NATS. Both build actors from the one table
(`actors.launch.kinds.ACTORS`) and run them in an `actors.runtime.ActorHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from actors.flow import Plan
from actors.launch.kinds import ACTORS, ActorContext, ActorKind, actor_id
from actors.observer import Observer
from actors.runtime import ActorHost, ActorInfo, first
from actors.runtime.presence import ActorReady
from bus import Bus, EmbeddedNats, subjects
from configs import Settings

log = structlog.get_logger(__name__)


async def serve_actor(
    kind: ActorKind,
    settings: Settings,
    flows: list[Path],
    *,
    nodes: frozenset[str] | None = None,
    name: str | None = None,
    serve_tools: bool = False,
) -> None:
    """Run one actor in this process until SIGTERM/SIGINT or a drain, heartbeating to the registry.

    Announces readiness on ``ca.sys.ready`` (for ``ca-actors up``). A drained actor finishes its work
    in flight, takes no more, deregisters and returns.
    """
    ident = actor_id(kind, name)
    structlog.contextvars.bind_contextvars(actor=ident)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Bus(
        settings.nats_url, name=ident, dedup_window_s=settings.dedup_window_s, stream_replicas=settings.stream_replicas
    ) as bus:
        ctx = ActorContext(bus, settings, ident, flows=flows, nodes=nodes, serve_tools=serve_tools)
        async with ctx.resources:
            actor = await ACTORS[kind](ctx)
            info = ActorInfo(id=ident, kind=kind, name=name or "")
            async with ActorHost(actor, bus, info=info, heartbeat_s=settings.heartbeat_s) as host:
                await bus.send(subjects.SYS_READY, ActorReady(kind=kind, id=ident, pid=os.getpid()))
                log.info("actor.ready", kind=kind)
                await first(stop.wait(), host.wait())
    log.info("actor.stopped", kind=kind)


class LocalStack:
    """Scheduler, worker(s), LLM gateway, memory and observer in this process, on an embedded or a given
    NATS server."""

    def __init__(
        self,
        settings: Settings,
        plans: list[Plan],
        *,
        embedded: bool = True,
        workers: int = 1,
        store_dir: Path | None = None,
        serve_all: bool = False,
    ) -> None:
        """Args:
        settings: Settings; `nats_url` is used when `embedded` is False.
        plans: Flows the scheduler publishes at start.
        embedded: Start a private nats-server (in `store_dir`, or a temporary directory).
        workers: Worker actors to run.
        serve_all: Workers serve every flow published to ``ca_plans``, also later ones, instead of `plans`.
        """
        self.settings = settings
        self._serve_all = serve_all
        self._plans = plans
        self._embedded = embedded
        self._workers = workers
        self._store_dir = store_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: EmbeddedNats | None = None
        self._resources = contextlib.AsyncExitStack()
        self._hosts: list[ActorHost] = []
        self.url = settings.nats_url
        self.client: Bus | None = None
        self.observer: Observer | None = None

    async def start(self) -> Self:
        if self._embedded:
            if self._store_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="ca-actors-")
                self._store_dir = Path(self._tmp.name)
            self._server = EmbeddedNats(self._store_dir / "nats")
            await self._server.start()
            self.url = self._server.url
            self.settings = self.settings.model_copy(update={"nats_url": self.url})
        only = None if self._serve_all else frozenset(p.flow for p in self._plans)
        workers: list[ActorKind] = ["worker"] * self._workers
        kinds: list[ActorKind] = ["llm-gateway", "memory", "observer", "scheduler", *workers]
        for kind in kinds:
            bus = await self._connect(kind)
            ctx = ActorContext(bus, self.settings, bus.name, plans=self._plans, only_flows=only, with_registry=False)
            await self._resources.enter_async_context(ctx.resources)
            actor = await ACTORS[kind](ctx)
            if isinstance(actor, Observer):
                self.observer = actor
            self._hosts.append(await ActorHost(actor, bus).start())
        self.client = await self._connect("client")
        return self

    async def _connect(self, kind: str) -> Bus:
        bus = Bus(
            self.url,
            name=actor_id(kind),
            dedup_window_s=self.settings.dedup_window_s,
            stream_replicas=self.settings.stream_replicas,
        )
        await bus.connect()
        self._resources.push_async_callback(bus.close)
        return bus

    async def close(self) -> None:
        """Stop the actors (work in flight finishes), close connections, stop the embedded server."""
        hosts, self._hosts = self._hosts, []
        for host in hosts:
            host.stop()
        results = await asyncio.gather(*(host.close() for host in hosts), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("stack.actor_failed", error=str(result))
        await self._resources.aclose()
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
