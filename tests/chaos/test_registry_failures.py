"""The registry when processes die: a killed agent goes stale then dead, a killed registry rebuilds its view."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from actors.runtime import roster as registry
from bus import Bus, EmbeddedNats, topology
from tests.conftest import ROOT
from tests.helpers import Actors, EventLog, run_flow
from tests.support.registry import BEAT, registry_stack, wait_status


@pytest.fixture
async def stack(nats_server: EmbeddedNats) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    async with registry_stack(nats_server.url) as procs:
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

    a.send_signal(signal.SIGKILL)
    a.wait()
    stale_after = await wait_status(stack, "agent-a", "stale")
    dead_after = stale_after + await wait_status(stack, "agent-a", "dead")
    assert 3 * BEAT - 0.5 <= stale_after <= 3 * BEAT + 2
    assert 10 * BEAT - 1 <= dead_after <= 10 * BEAT + 3
    more = await asyncio.gather(*(run_flow(stack.bus, "demo", {"topic": f"after{i}"}) for i in range(3)))
    assert all(r["status"] == "succeeded" for r in more)


@pytest.mark.timeout(120)
async def test_a_restarted_registry_rebuilds_its_view_by_pinging(nats_server: EmbeddedNats) -> None:
    async with Bus(nats_server.url, name="test-client") as bus:
        # Slow heartbeats: only the ping can bring the actors back into a wiped registry quickly.
        procs = Actors(bus, nats_server.url, ROOT / "configs" / "examples", "mock", heartbeat_s=30.0)
        await procs.listen()
        try:
            await procs.start("scheduler")
            reg = await procs.start("registry")
            await procs.start("llm-gateway")
            await procs.start_agent("--name", "keeper")
            await asyncio.sleep(0.5)
            everyone = await registry.actors(bus)
            before = {r.id for r in everyone if r.kind != "registry"}
            assert "keeper" in before
            procs.kill(reg)
            kv = bus.kv(topology.REGISTRY)
            for info in everyone:
                await kv.delete(info.id)
            assert await registry.actors(bus) == []
            await procs.start("registry")
            await asyncio.sleep(1.0)
            after = {r.id for r in await registry.actors(bus)}
            assert before <= after, "every actor is known again well within one 30 s heartbeat"
        finally:
            procs.stop_all()
