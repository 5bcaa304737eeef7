"""Putting actors together: loading flow files, one actor per process, or a whole stack in-process.

`serve_actor` is what each OS process started by ``ca-actors up`` runs (``ca-actors actor KIND``).
`LocalStack` runs the scheduler, a worker and an LLM gateway as tasks of one event loop, each with
its own NATS connection, for ``ca-actors run`` and for tests: the actors still talk only over NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import structlog

from actors.flow import flow_names, load_flows
from actors.flow.plan import Plan
from actors.llm.backend import LLMBackend
from actors.llm.cassette import Cassette
from actors.llm.gateway import LLMGateway
from actors.llm.mock import MockScript
from actors.memory.actor import MemoryActor
from actors.observer.actor import Observer, TraceSink
from actors.registry.actor import Registry
from actors.runtime.logs import RUN_LOGS
from actors.runtime.presence import ActorInfo, ActorReady, Load, Presence
from actors.runtime.roster import RegistryView
from actors.scheduler.actor import Scheduler
from actors.tracking import prompt_fetcher
from actors.worker.actor import NodeWorker
from actors.worker.llm_client import BusLLMClient
from actors.worker.tool_host import ToolHost
from bus import Bus, EmbeddedNats, new_id, subjects
from configs import Settings
from store import Store, connect_store

log = structlog.get_logger(__name__)

ActorKind = Literal["scheduler", "worker", "llm-gateway", "registry", "memory", "observer"]
ACTOR_KINDS: tuple[ActorKind, ...] = ("scheduler", "worker", "llm-gateway", "registry", "memory", "observer")


def backend_for(settings: Settings) -> LLMBackend:
    """The LLM engine the settings ask for: mock script, `--llm` override, cassette."""
    script = MockScript.load(settings.mock_script) if settings.mock_script else None
    cassette = None
    if settings.replay is not None:
        cassette = Cassette(settings.replay, "replay")
    elif settings.record is not None:
        cassette = Cassette(settings.record, "record")
    return LLMBackend(
        script,
        model_override=settings.llm_override,
        cassette=cassette,
        provider_concurrency=settings.llm_provider_concurrency,
        requests_per_s=settings.llm_requests_per_s,
    )


def trace_sink(settings: Settings) -> TraceSink | None:
    """The MLflow trace writer when `settings.traces` is on and MLflow is installed; else None (logged)."""
    if not settings.traces:
        return None
    if importlib.util.find_spec("mlflow") is None:  # not imported here: that would delay start-up
        log.warning("observer.no_traces", reason="MLflow is not installed: pip install 'ca-actors[mlflow]'")
        return None
    from actors.observer.mlflow_sink import MlflowSink

    return MlflowSink(settings)


def _actor_id(kind: str, name: str | None = None) -> str:
    if name:
        return subjects.actor_token(name)
    return subjects.actor_token(f"{kind}-{socket.gethostname()}-{os.getpid()}-{new_id()[:6]}")


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

    Announces readiness on ``ca.sys.ready`` (for ``ca-actors up``). A drained worker finishes the steps
    in flight, takes no more, deregisters and returns.
    """
    actor_id = _actor_id(kind, name)
    structlog.contextvars.bind_contextvars(actor=actor_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Bus(settings.nats_url, name=actor_id, dedup_window_s=settings.dedup_window_s) as bus:
        RUN_LOGS.attach(bus, actor_id)
        info = ActorInfo(id=actor_id, kind=kind, name=name or "")
        serves: Callable[[], list[str]] | None = None
        load: Callable[[], Load] | None = None
        view: RegistryView | None = None
        main: asyncio.Task[Any]
        stopper: Callable[[], None] = stop.set
        if kind in ("scheduler", "worker"):
            view = RegistryView(bus, heartbeat_s=settings.heartbeat_s)
            await view.start()
        if kind == "scheduler":
            # In a thread: fetching registry prompts from a remote MLflow must not stall the connection.
            flow_set = await asyncio.to_thread(load_flows, flows, fetch_prompts=prompt_fetcher(settings.mlflow_uri()))
            for error in flow_set.errors:
                log.error("flow.invalid", error=error)
            scheduler = Scheduler(bus, settings, flow_set.plans, actor_id=actor_id, registry=view)
            main = await _launch(scheduler)
            stopper = scheduler.stop
            info.serves = [f"trigger.{p.flow}" for p in flow_set.plans]
        elif kind == "worker":
            llm = BusLLMClient(bus, timeout_s=settings.llm_timeout_s)
            only = flow_names(flows) if flows else None
            worker = NodeWorker(bus, settings, llm, actor_id=actor_id, only_flows=only, only_nodes=nodes, registry=view)
            main = asyncio.create_task(worker.run())
            await _first(worker.wait_ready(), main)
            stopper, load = worker.stop, worker.load
            if serve_tools:
                await ToolHost(bus, actor_id, worker.tool_context).start()
                info.capabilities = ["tools"]

            def serves_now() -> list[str]:
                return worker.serving

            serves = serves_now
        elif kind == "memory":
            store = await connect_store(settings.store())
            memory = MemoryActor(bus, store)
            main = await _launch(memory)
            stopper = memory.stop
            info.serves = ["ca.memory"]
        elif kind == "observer":
            store = await connect_store(settings.store())
            observer = Observer(bus, settings, store, trace_sink(settings))
            main = await _launch(observer)
            stopper = observer.stop
            info.serves = ["ca.evt"]
        elif kind == "registry":
            registry = Registry(bus, heartbeat_s=settings.heartbeat_s)
            main = await _launch(registry)
            stopper = registry.stop
            info.serves = ["ca.registry"]
        else:
            gateway = LLMGateway(bus, backend_for(settings))
            await gateway.start()
            main = asyncio.create_task(stop.wait())
            load = gateway.load
            info.serves = ["ca.llm.complete"]
        presence = Presence(bus, info, heartbeat_s=settings.heartbeat_s, serves=serves, load=load, on_drain=stop.set)
        await presence.start()
        await bus.send(subjects.SYS_READY, ActorReady(kind=kind, id=actor_id, pid=os.getpid()))
        log.info("actor.ready", kind=kind)
        await _first(stop.wait(), main)
        stopper()
        await main
        if kind == "llm-gateway":
            await gateway.stop()
        if kind in ("memory", "observer"):
            await store.close()
        await presence.stop()
        if view is not None:
            await view.stop()
        RUN_LOGS.detach(bus)
    log.info("actor.stopped", kind=kind)


async def _first(*aws: Awaitable[Any]) -> None:
    """Wait until the first of several awaitables is done; re-raise if it failed.

    Tasks passed in are left running; helper tasks made here from plain awaitables are cancelled.
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        if task not in aws:
            task.cancel()
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc


class _Actor(Protocol):
    async def run(self, started: asyncio.Event | None = None) -> None: ...


async def _launch(actor: _Actor) -> asyncio.Task[None]:
    """Start `actor.run` as a task; return it once the actor says it started (re-raise if it failed first)."""
    started = asyncio.Event()
    task = asyncio.create_task(actor.run(started))
    await _first(started.wait(), task)
    return task


class LocalStack:
    """Scheduler, worker(s) and LLM gateway in this process, on an embedded or a given NATS server."""

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
        self._buses: list[Bus] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stoppers: list[Callable[[], None]] = []
        self.url = settings.nats_url
        self.client: Bus | None = None
        self.observer: Observer | None = None
        self._store: Store | None = None

    async def start(self) -> Self:
        if self._embedded:
            if self._store_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="ca-actors-")
                self._store_dir = Path(self._tmp.name)
            self._server = EmbeddedNats(self._store_dir / "nats")
            await self._server.start()
            self.url = self._server.url
            self.settings = self.settings.model_copy(update={"nats_url": self.url})
        s = self.settings
        for kind in ["scheduler", "llm-gateway"] + ["worker"] * self._workers:
            bus = Bus(self.url, name=_actor_id(kind), dedup_window_s=s.dedup_window_s)
            self._buses.append(bus)
            await bus.connect()
        sched_bus, gw_bus, *worker_buses = self._buses
        RUN_LOGS.attach(sched_bus, sched_bus.name)
        gateway = LLMGateway(gw_bus, backend_for(s))
        await gateway.start()
        self._store = await connect_store(s.store())
        memory = MemoryActor(gw_bus, self._store)
        self._tasks.append(await _launch(memory))
        self._stoppers.append(memory.stop)
        self.observer = Observer(gw_bus, s, self._store, trace_sink(s))
        self._tasks.append(await _launch(self.observer))
        self._stoppers.append(self.observer.stop)
        scheduler = Scheduler(sched_bus, s, self._plans, actor_id=sched_bus.name)
        self._tasks.append(await _launch(scheduler))
        self._stoppers.append(scheduler.stop)
        only = None if self._serve_all else frozenset(p.flow for p in self._plans)
        for bus in worker_buses:
            worker = NodeWorker(
                bus, s, BusLLMClient(bus, timeout_s=s.llm_timeout_s), actor_id=bus.name, only_flows=only
            )
            task = asyncio.create_task(worker.run())
            self._tasks.append(task)
            self._stoppers.append(worker.stop)
            await _first(worker.wait_ready(), task)
        self.client = await Bus(self.url, name=_actor_id("client"), dedup_window_s=s.dedup_window_s).connect()
        self._buses.append(self.client)
        return self

    async def close(self) -> None:
        """Stop the actors (work in flight finishes), close connections, stop the embedded server."""
        for bus in self._buses:
            RUN_LOGS.detach(bus)
        for stop in self._stoppers:
            stop()
        self._stoppers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        for bus in self._buses:
            await bus.close()
        self._buses.clear()
        if self._store is not None:
            await self._store.close()
            self._store = None
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
