"""The chaos suite: runs of a 5-node flow, each step one side effect, while actors and servers are broken.

``make chaos`` runs it in full (``CA_CHAOS_RUNS=100``) and writes the figures to
``.ca-actors/chaos-figures.jsonl``; ``make test`` runs the short form (20 runs). Figures go to
docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus import Bus, EmbeddedNats
from tests.conftest import ROOT
from tests.fakes import chaos_llm
from tests.helpers import Actors
from tests.support.chaos import KILLABLE, MODEL, ChaosStack, Load, actor_env, report, tally, write_flow

RUNS = int(os.environ.get("CA_CHAOS_RUNS", "20"))
FIGURES = Path(os.environ["CA_CHAOS_FIGURES"]) if os.environ.get("CA_CHAOS_FIGURES") else None
# Scale the time limits with the number of runs (2 cores shared by several test sessions).
SETTLE_S = 60 + 2.5 * RUNS


@dataclass
class Harness:
    bus: Bus
    nats: EmbeddedNats
    stack: ChaosStack
    workspace: Path


@pytest.fixture
async def harness(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Harness]:
    with chaos_llm.serve(latency_s=0.1) as llm:
        flows = write_flow(tmp_path / "flows", llm.api_base).parent
        env = actor_env(tmp_path)
        async with Bus(nats_server.url, name="chaos-client") as bus:
            actors = Actors(bus, nats_server.url, flows, MODEL, heartbeat_s=1.0, env=env)
            await actors.listen()
            stack = ChaosStack(actors, Path(env["CA_TOOL_WORKSPACE"]))
            try:
                for kind in ("scheduler", "llm-gateway", "worker", "worker", "memory", "observer", "registry"):
                    await stack.start(kind)
                yield Harness(bus, nats_server, stack, stack.workspace)
            finally:
                actors.stop_all()


@pytest.mark.timeout(int(SETTLE_S) + 120)
async def test_every_run_completes_once_while_a_random_actor_is_killed_every_few_seconds(harness: Harness) -> None:
    load = Load(harness.bus, RUNS, prefix="kill")
    stop = asyncio.Event()
    started = time.monotonic()
    killer = asyncio.create_task(harness.stack.kill_loop(stop, every_s=2.5, kinds=KILLABLE, seed=18))
    try:
        await load.publish(every_s=0.2)
        found = await load.settle(timeout_s=SETTLE_S)
    finally:
        stop.set()
        await killer
    result = tally(load, found, harness.workspace, harness.stack.kills, time.monotonic() - started)
    report("kill-random-actor", result, FIGURES)
    assert len(result.kills) >= 3, "the loop must have killed something while runs were going"
    assert result.lost == []
    assert result.extra_runs == 0
    assert result.failed == []
    assert result.completed == RUNS
    assert result.duplicate_effects == {}
    assert result.missing_effects == 0


@pytest.mark.timeout(int(SETTLE_S) + 120)
async def test_a_worker_frozen_past_ack_wait_then_thawed_applies_no_step_twice(harness: Harness) -> None:
    load = Load(harness.bus, RUNS, prefix="freeze")
    started = time.monotonic()
    frozen = harness.stack.procs["worker"][0]
    await load.publish(every_s=0.05)
    await asyncio.sleep(1.0)  # steps in flight on both workers
    harness.stack.freeze(frozen)
    await asyncio.sleep(3.0)  # three times ack_wait (1 s): its steps go to the other worker
    harness.stack.thaw(frozen)
    found = await load.settle(timeout_s=SETTLE_S)
    result = tally(load, found, harness.workspace, [], time.monotonic() - started)
    report("sigstop-worker", result, FIGURES)
    assert result.lost == []
    assert result.completed == RUNS
    assert result.duplicate_effects == {}


@pytest.mark.timeout(int(SETTLE_S) + 120)
async def test_no_trigger_is_lost_when_nats_server_restarts_under_load(harness: Harness) -> None:
    load = Load(harness.bus, RUNS, prefix="restart")
    started = time.monotonic()
    publishing = asyncio.create_task(load.publish(every_s=0.1))
    await asyncio.sleep(RUNS * 0.05)  # half of the triggers out
    down_at = time.monotonic()
    await harness.nats.close()
    await asyncio.sleep(1.0)
    await harness.nats.start()
    back_s = time.monotonic() - down_at
    await publishing
    found = await load.settle(timeout_s=SETTLE_S)
    result = tally(load, found, harness.workspace, [], time.monotonic() - started)
    report(f"restart-nats (down {back_s:.1f} s)", result, FIGURES)
    assert result.lost == []
    assert result.extra_runs == 0
    assert result.completed == RUNS
    assert result.duplicate_effects == {}


def test_the_chaos_suite_lives_where_make_chaos_runs_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "chaos:" in makefile
    assert "tests/chaos" in makefile
