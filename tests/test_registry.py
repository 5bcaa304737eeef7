"""The registry: heartbeats, stale/dead detection, agents that join, drain and are expected."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.cli.console import agent_rows
from actors.runtime import roster as registry
from actors.runtime.presence import ActorInfo
from actors.runtime.roster import ExpectAgent, ExpectAnswer
from bus import Bus, EmbeddedNats, subjects, topology
from tests.conftest import EXAMPLES, ROOT
from tests.helpers import Actors, EventLog, outside_client, run_flow, start_run

BEAT = 0.5  # heartbeat of every actor in these tests: stale after 1.5 s, dead after 5 s


def test_status_follows_the_age_of_the_last_heartbeat() -> None:
    info = ActorInfo(id="a", kind="worker", heartbeat_at=100.0)
    assert registry.status_of(info, now=101.0, heartbeat_s=1.0) == "live"
    assert registry.status_of(info, now=103.5, heartbeat_s=1.0) == "stale"
    assert registry.status_of(info, now=111.0, heartbeat_s=1.0) == "dead"


def test_an_expected_agent_is_pending_until_it_shows_up() -> None:
    wanted = [registry.Expected(name="gpu-1", serves=["f.n"])]
    assert [r["status"] for r in registry.listing([], wanted, now=10.0, heartbeat_s=1.0)] == ["pending"]
    arrived = ActorInfo(id="gpu-1", kind="worker", name="gpu-1", heartbeat_at=9.5, serves=["f.n"])
    rows = registry.listing([arrived], wanted, now=10.0, heartbeat_s=1.0)
    assert [(r["id"], r["status"]) for r in rows] == [("gpu-1", "live")]
    assert set(rows[0]) >= {"id", "kind", "host", "pid", "status", "heartbeat_age_s", "load", "serves"}


@pytest.fixture
async def stack(nats_server: EmbeddedNats) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    async with Bus(nats_server.url, name="test-client") as bus:
        procs = Actors(bus, nats_server.url, EXAMPLES, "mock/300ms", heartbeat_s=BEAT)
        await procs.listen()
        try:
            await procs.start("scheduler")
            await procs.start("registry")
            await procs.start("llm-gateway")
            yield procs
        finally:
            procs.stop_all()


async def rows(actors: Actors) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in await agent_rows(actors.bus, BEAT)}


async def wait_status(actors: Actors, actor_id: str, status: str | None, timeout_s: float = 15.0) -> float:
    """Seconds until `actor_id` has `status` in the registry (None: gone)."""
    t0 = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while True:
            row = (await rows(actors)).get(actor_id)
            if (row["status"] if row else None) == status:
                return time.monotonic() - t0
            await asyncio.sleep(0.1)


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
async def test_a_drained_agent_finishes_its_step_then_deregisters(stack: Actors) -> None:
    agent = await stack.start_agent("--name", "drainee", "--nodes", "echo.echo")
    await wait_status(stack, "drainee", "live")
    log = await EventLog().start(stack.bus)
    run_id = await start_run(stack.bus, "echo", {"message": "m"})
    await log.wait_for("node.started", run_id=run_id)
    async with outside_client(stack.url) as nc:
        answer = json.loads((await nc.request(subjects.registry_drain("drainee"), b"{}", timeout=5)).data)
    assert answer == {"ok": True}
    finished = await log.wait_for("run.finished", run_id=run_id)
    assert finished.data.status == "succeeded"
    assert await asyncio.to_thread(agent.wait, 20) == 0
    await wait_status(stack, "drainee", None, timeout_s=5)


@pytest.mark.timeout(120)
async def test_an_expected_agent_is_pending_then_live(stack: Actors) -> None:
    asked = ExpectAgent(name="late", serves=["echo.echo"])
    answer = await stack.bus.request(subjects.REGISTRY_EXPECT, asked, ExpectAnswer, timeout_s=5)
    assert (answer.ok, answer.name) == (True, "late")
    await wait_status(stack, "late", "pending")
    await stack.start_agent("--name", "late", "--nodes", "echo.echo")
    await wait_status(stack, "late", "live")
    assert (await rows(stack))["late"]["kind"] == "worker"


@pytest.mark.timeout(120)
async def test_a_run_whose_node_has_no_live_worker_says_it_is_waiting(stack: Actors) -> None:
    await stack.start_agent("--name", "outliner", "--nodes", "demo.outline")
    await wait_status(stack, "outliner", "live")
    log = await EventLog().start(stack.bus)
    run_id = await start_run(stack.bus, "demo", {"topic": "t"})
    waiting = await log.wait_for("node.waiting", run_id=run_id)
    assert waiting.node == "draft"
    await stack.start_agent("--name", "drafter", "--nodes", "demo.draft,demo.title")
    finished = await log.wait_for("run.finished", run_id=run_id, timeout_s=30)
    assert finished.data.status == "succeeded"


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
