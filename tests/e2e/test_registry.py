"""The registry with agents as processes: agents that join, drain, are expected, or are missing for a node."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bus import EmbeddedNats, subjects
from tests.helpers import Actors, EventLog
from tests.support.registry import registry_stack, rows, wait_status


@pytest.fixture
async def stack(nats_server: EmbeddedNats) -> AsyncIterator[Actors]:
    """Scheduler, registry and LLM gateway processes serving the examples; workers are up to each test."""
    async with registry_stack(nats_server.url) as procs:
        yield procs


@pytest.mark.timeout(120)
async def test_a_drained_agent_finishes_its_step_then_deregisters(stack: Actors) -> None:
    agent = await stack.start_agent("--name", "drainee", "--nodes", "echo.echo")
    await wait_status(stack, "drainee", "live")
    log = await EventLog().start(stack.bus)
    reply = json.loads((await stack.bus.nc.request(subjects.trigger("echo"), b'{"message": "m"}', timeout=10)).data)
    await log.wait_for("node.started", run_id=reply["run_id"])
    answer = json.loads((await stack.bus.nc.request(subjects.registry_drain("drainee"), b"{}", timeout=5)).data)
    assert answer == {"ok": True}
    finished = await log.wait_for("run.finished", run_id=reply["run_id"])
    assert finished.data["status"] == "succeeded"
    assert await asyncio.to_thread(agent.wait, 20) == 0
    await wait_status(stack, "drainee", None, timeout_s=5)


@pytest.mark.timeout(120)
async def test_an_expected_agent_is_pending_then_live(stack: Actors) -> None:
    body = json.dumps({"name": "late", "serves": ["echo.echo"]}).encode()
    answer = json.loads((await stack.bus.nc.request(subjects.REGISTRY_EXPECT, body, timeout=5)).data)
    assert answer["ok"] is True
    await wait_status(stack, "late", "pending")
    await stack.start_agent("--name", "late", "--nodes", "echo.echo")
    await wait_status(stack, "late", "live")
    assert (await rows(stack))["late"]["kind"] == "worker"


@pytest.mark.timeout(120)
async def test_a_run_whose_node_has_no_live_worker_says_it_is_waiting(stack: Actors) -> None:
    await stack.start_agent("--name", "outliner", "--nodes", "demo.outline")
    await wait_status(stack, "outliner", "live")
    log = await EventLog().start(stack.bus)
    reply = json.loads((await stack.bus.nc.request(subjects.trigger("demo"), b'{"topic": "t"}', timeout=10)).data)
    waiting = await log.wait_for("node.waiting", run_id=reply["run_id"])
    assert waiting.node == "draft"
    await stack.start_agent("--name", "drafter", "--nodes", "demo.draft,demo.title")
    finished = await log.wait_for("run.finished", run_id=reply["run_id"], timeout_s=30)
    assert finished.data["status"] == "succeeded"
