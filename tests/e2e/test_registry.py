"""The registry with agents as processes: agents that join, drain, are expected, or are missing for a node."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from actors.runtime.roster import ExpectAgent, ExpectAnswer
from bus import EmbeddedNats, subjects
from tests.helpers import Actors, EventLog, outside_client, start_run
from tests.support.registry import registry_stack, rows, wait_status


@pytest.fixture
async def stack(nats_server: EmbeddedNats) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    async with registry_stack(nats_server) as procs:
        yield procs


@pytest.mark.timeout(120)
async def test_a_drained_agent_finishes_its_step_then_deregisters(stack: Actors) -> None:
    agent = await stack.start_agent("--name", "drainee", "--nodes", "echo.echo")
    await wait_status(stack, "drainee", "live")
    log = await EventLog().start(stack.bus)
    run_id = await start_run(stack.bus, "echo", {"message": "m"})
    await log.wait_for("node.started", run_id=run_id)
    async with outside_client(stack.url, stack.auth_file) as nc:
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
