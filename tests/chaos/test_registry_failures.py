"""The registry when processes die: a killed agent goes stale then dead, a killed registry rebuilds its view."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from actors.runtime import roster as registry
from actors.runtime.presence import ActorInfo
from bus import Bus, EmbeddedNats, Role, topology
from tests.conftest import ROOT
from tests.helpers import Actors, EventLog, run_flow, until
from tests.support.registry import RegistryEvents, registry_stack, rows, wait_status


@pytest.fixture
async def stack(nats_server: EmbeddedNats) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    async with registry_stack(nats_server) as procs:
        yield procs


@pytest.mark.timeout(120)
async def test_two_agents_share_a_node_and_a_killed_one_goes_stale_then_dead(stack: Actors) -> None:
    a = await stack.start_agent("--name", "agent-a", "--nodes", "demo.outline,demo.draft,demo.title")
    await stack.start_agent("--name", "agent-b", "--nodes", "demo.outline,demo.draft,demo.title")
    await wait_status(stack, "agent-a", "live")
    await wait_status(stack, "agent-b", "live")
    log = await EventLog().start(stack.bus)
    results = await asyncio.gather(*(run_flow(stack.bus, "demo", {"topic": f"t{i}"}) for i in range(20)))
    assert all(r["status"] == "succeeded" for r in results)
    assert set(Counter(e.sender for e in log.of("node.started"))) == {"agent-a", "agent-b"}

    changes = await RegistryEvents().start(stack.bus)
    a.send_signal(signal.SIGKILL)
    a.wait()
    # The registry announces each step as the beats stop; how many beats make stale or dead is
    # unit-tested (test_registry_status), so nothing here depends on how long the steps take.
    await changes.wait_for("dead", "agent-a")
    assert changes.of("agent-a") == ["stale", "dead"]
    assert (await rows(stack))["agent-a"]["status"] == "dead"
    more = await asyncio.gather(*(run_flow(stack.bus, "demo", {"topic": f"after{i}"}) for i in range(3)))
    assert all(r["status"] == "succeeded" for r in more)


@pytest.mark.timeout(120)
async def test_a_restarted_registry_rebuilds_its_view_by_pinging(nats_server: EmbeddedNats) -> None:
    async with Bus(nats_server.url, name="test-client", credentials=nats_server.credentials(Role.ADMIN)) as bus:
        # Slow heartbeats: only the ping can bring the actors back into a wiped registry quickly.
        flows = ROOT / "configs" / "examples"
        procs = Actors(bus, nats_server.url, flows, "mock", heartbeat_s=30.0, auth_file=nats_server.auth_file)
        await procs.listen()
        try:
            await procs.start("scheduler")
            reg = await procs.start("registry")
            await procs.start("llm-gateway")
            await procs.start_agent("--name", "keeper")
            pids = {proc.pid for proc in procs.procs if proc is not reg}

            async def everyone_registered() -> list[ActorInfo]:
                known = await registry.actors(bus)
                return known if pids <= {info.pid for info in known} else []

            everyone = await until(everyone_registered, "the first heartbeat of every process is in the registry")
            before = {r.id for r in everyone if r.kind != "registry"}
            assert "keeper" in before
            procs.kill(reg)
            kv = bus.kv(topology.REGISTRY)
            for info in everyone:
                await kv.delete(info.id)
            assert await registry.actors(bus) == []
            await procs.start("registry")

            async def everyone_back() -> bool:
                return before <= {r.id for r in await registry.actors(bus)}

            # Well within one 30 s heartbeat: only the registry's start-up ping can bring them back in time.
            await until(everyone_back, "every actor is known again to the new registry", timeout_s=10)
        finally:
            procs.stop_all()
