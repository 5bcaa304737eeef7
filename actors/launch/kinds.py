"""The table of actor kinds: how to build each one, the same for ``up``, ``agent``, ``actor KIND`` and
`LocalStack`.

A factory gets an `ActorContext` (the actor's connection, settings, id, flows and an exit stack for
what it opens, such as the store) and returns an `actors.runtime.Actor`; `actors.runtime.ActorHost`
runs it. A new actor kind is one entry in `ACTORS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import structlog

from actors.flow import Plan, flow_names, load_flows
from actors.llm import Cassette, EndpointPolicy, LLMBackend, LLMGateway, MockScript, parse_allowed
from actors.memory import MemoryActor
from actors.observer import Observer, TraceSink
from actors.registry import Registry
from actors.runtime import Actor, RegistryView
from actors.scheduler import Scheduler
from actors.tracking import prompt_fetcher
from actors.worker import BusLLMClient, NodeWorker
from bus import Bus, new_id, subjects, topology
from configs import Settings
from configs.errors import ActorError
from store import connect_store

log = structlog.get_logger(__name__)

ActorKind = Literal["scheduler", "worker", "llm-gateway", "registry", "memory", "observer", "ui"]
ACTOR_KINDS: tuple[ActorKind, ...] = get_args(ActorKind)


@dataclass
class ActorContext:
    """What a factory may use to build an actor."""

    bus: Bus
    settings: Settings
    actor_id: str
    # Flow files (scheduler: what it publishes; worker: what it serves, all flows when empty).
    flows: list[Path] = field(default_factory=list)
    # Already compiled plans (`LocalStack`): the scheduler publishes these instead of reading `flows`.
    plans: list[Plan] | None = None
    # Worker: serve only these flows / these ``flow.node`` names; and run the tools pinned to it.
    only_flows: frozenset[str] | None = None
    nodes: frozenset[str] | None = None
    serve_tools: bool = False
    # Whether the actor may count on a registry (in `up` and `agent`, not in a one-shot `LocalStack`).
    with_registry: bool = True
    # What the factory opens, closed after the actor stopped.
    resources: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)


Factory = Callable[[ActorContext], Awaitable[Actor]]


def actor_id(kind: str, name: str | None = None) -> str:
    """An actor's id: its `name` when given, else unique to this host, process and moment."""
    if name:
        return subjects.actor_token(name)
    return subjects.actor_token(f"{kind}-{socket.gethostname()}-{os.getpid()}-{new_id()[:6]}")


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
        default_model=settings.llm_default,
        cassette=cassette,
        provider_concurrency=settings.llm_provider_concurrency,
        requests_per_s=settings.llm_requests_per_s,
    )


def trace_sink(settings: Settings) -> TraceSink | None:
    """The MLflow trace writer when MLflow is installed (it imports MLflow at its first trace); else None.

    The observer uses it for every run when `settings.traces` is on, and for the runs of flows whose
    ``config.observability.mlflow`` is enabled either way.
    """
    if importlib.util.find_spec("mlflow") is None:  # not imported here: that would delay start-up
        if settings.traces:
            log.warning("observer.no_traces", reason="MLflow is not installed: pip install 'ca-actors[mlflow]'")
        return None
    from actors.observer.mlflow_sink import MlflowSink

    return MlflowSink(settings)


async def _roster(ctx: ActorContext) -> RegistryView | None:
    """A live view of the registry, when there is one to watch."""
    if not ctx.with_registry:
        return None
    view = RegistryView(ctx.bus, heartbeat_s=ctx.settings.heartbeat_s)
    await view.start()
    ctx.resources.push_async_callback(view.stop)
    return view


async def _scheduler(ctx: ActorContext) -> Actor:
    plans = ctx.plans
    if plans is None:
        # In a thread: fetching registry prompts from a remote MLflow must not stall the connection.
        flow_set = await asyncio.to_thread(
            load_flows, ctx.flows, fetch_prompts=prompt_fetcher(ctx.settings.mlflow_uri())
        )
        for error in flow_set.errors:
            log.error("flow.invalid", error=error)
        plans = flow_set.plans
    return Scheduler(ctx.bus, ctx.settings, plans, actor_id=ctx.actor_id, registry=await _roster(ctx))


async def _worker(ctx: ActorContext) -> Actor:
    s = ctx.settings
    only = ctx.only_flows if ctx.only_flows is not None else (flow_names(ctx.flows) if ctx.flows else None)
    return NodeWorker(
        ctx.bus,
        s,
        BusLLMClient(ctx.bus, timeout_s=s.llm_timeout_s),
        actor_id=ctx.actor_id,
        only_flows=only,
        only_nodes=ctx.nodes,
        registry=await _roster(ctx),
        serve_tools=ctx.serve_tools,
    )


async def _llm_gateway(ctx: ActorContext) -> Actor:
    # Provider endpoints: those the published flows declare, and the operator's CA_LLM_ENDPOINTS.
    endpoints = EndpointPolicy(ctx.bus.kv(topology.PLANS), parse_allowed(ctx.settings.llm_endpoints))
    return LLMGateway(ctx.bus, backend_for(ctx.settings), endpoints=endpoints)


async def _registry(ctx: ActorContext) -> Actor:
    return Registry(ctx.bus, heartbeat_s=ctx.settings.heartbeat_s)


async def _memory(ctx: ActorContext) -> Actor:
    store = await connect_store(ctx.settings.store())
    ctx.resources.push_async_callback(store.close)
    return MemoryActor(ctx.bus, store)


async def _observer(ctx: ActorContext) -> Actor:
    store = await connect_store(ctx.settings.store())
    ctx.resources.push_async_callback(store.close)
    return Observer(ctx.bus, ctx.settings, store, trace_sink(ctx.settings))


async def _ui(ctx: ActorContext) -> Actor:
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise ActorError("the dashboard needs the [ui] extra: pip install 'ca-actors[ui]'")
    from actors.ui import Dashboard  # the [ui] extra: imported only by the process that serves it

    store = await connect_store(ctx.settings.store())
    ctx.resources.push_async_callback(store.close)
    dashboard = Dashboard(ctx.bus, store, ctx.settings, flows=ctx.flows)
    if dashboard.generated_token:
        s = ctx.settings
        sys.stderr.write(
            f"dashboard token (set CA_UI_TOKEN to choose one): {dashboard.generated_token}\n"
            f"open http://{s.ui_host}:{s.ui_port}/?token={dashboard.generated_token}\n"
        )
        sys.stderr.flush()
    return dashboard


ACTORS: dict[ActorKind, Factory] = {
    "scheduler": _scheduler,
    "worker": _worker,
    "llm-gateway": _llm_gateway,
    "registry": _registry,
    "memory": _memory,
    "observer": _observer,
    "ui": _ui,
}
