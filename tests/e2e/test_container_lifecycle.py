"""What the images rely on: `ca-actors health` (their HEALTHCHECK and liveness probe) and SIGTERM → drain."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import Bus, EmbeddedNats, Role
from tests.helpers import Actors, EventLog, linear_flow, run_flow, write_flow
from tests.support.cli import cli


@pytest.fixture
async def stack(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Actors]:
    flows = tmp_path / "flows"
    flows.mkdir()
    write_flow(flows / "slow.yaml", linear_flow("slow", ["first", "second"]))
    async with Bus(nats_server.url, name="test", credentials=nats_server.credentials(Role.ADMIN)) as bus:
        actors = Actors(bus, nats_server.url, flows, llm="mock/1500ms", auth_file=nats_server.auth_file)
        await actors.listen()
        try:
            for kind in ("scheduler", "registry", "llm-gateway"):  # the scheduler sets up the topology
                await actors.start(kind)
            yield actors
        finally:
            actors.stop_all()


async def test_health_succeeds_while_an_actor_of_this_host_answers_and_fails_otherwise(stack: Actors) -> None:
    agent = await stack.start_agent("--name", "probe-me")
    login = {"CA_NATS_AUTH_FILE": str(stack.auth_file)}
    ok = await asyncio.to_thread(cli, "health", "--nats", stack.url, "--kind", "worker", env=login)
    assert ok.returncode == 0, ok.stderr
    assert "healthy: worker probe-me serving" in ok.stdout
    elsewhere = await asyncio.to_thread(
        cli, "health", "--nats", stack.url, "--host", "not-" + socket.gethostname(), env=login
    )
    assert elsewhere.returncode == 1
    assert "no actor on host not-" in elsewhere.stderr
    stack.kill(agent)
    gone = await asyncio.to_thread(cli, "health", "--nats", stack.url, "--kind", "worker", env=login)
    assert gone.returncode == 1
    no_server = await asyncio.to_thread(cli, "health", "--nats", "nats://127.0.0.1:1", "--wait", "0.2")
    assert no_server.returncode == 1
    assert no_server.stderr.startswith("unhealthy: cannot connect to NATS")


async def test_sigterm_makes_an_agent_finish_its_step_in_flight_then_exit_cleanly(stack: Actors) -> None:
    events = await EventLog().start(stack.bus)
    agent = await stack.start_agent("--name", "leaving")
    run = asyncio.create_task(run_flow(stack.bus, "slow", {"topic": "drain"}, timeout_s=60))
    started = await events.wait_for("node.started")
    assert started.sender == "leaving"
    agent.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(agent.wait, 30)
    assert code == 0
    [finished] = events.of("node.finished", started.run_id)
    assert finished.sender == "leaving"  # the step in flight was finished (and acked), not abandoned
    await stack.start_agent("--name", "next")
    result = await run
    assert result["status"] == "succeeded"
    # Nothing was redelivered: the drained agent's step ran once, the second one on the new agent.
    assert [e.sender for e in events.of("node.started", started.run_id)] == ["leaving", "next"]
