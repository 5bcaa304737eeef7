"""Actors as separate OS processes: crash a worker or the scheduler mid-run and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from actors.scheduler.messages import TriggerInputs
from bus import Bus, EmbeddedNats, Event, Role, subjects
from tests.conftest import ROOT
from tests.helpers import Actors, EventLog, run_flow, start_run

FIVE_STEP = ROOT / "tests" / "flows" / "five_step.yaml"


@pytest.fixture
async def actors(nats_server: EmbeddedNats) -> AsyncIterator[Actors]:
    async with Bus(nats_server.url, name="test-client", credentials=nats_server.credentials(Role.ADMIN)) as bus:
        procs = Actors(bus, nats_server.url, FIVE_STEP, "mock/700ms", auth_file=nats_server.auth_file)
        await procs.listen()
        try:
            yield procs
        finally:
            procs.stop_all()


@pytest.mark.timeout(120)
async def test_a_worker_killed_mid_step_has_its_step_redelivered_and_applied_once(actors: Actors) -> None:
    await actors.start("scheduler")
    await actors.start("llm-gateway")
    doomed = await actors.start("worker")
    log = await EventLog().start(actors.bus)
    run_id = await start_run(actors.bus, "five_step", {"text": "t"})
    # n2 is in flight (its LLM call takes 700 ms) when the worker dies.
    await log.wait_for("node.started", run_id=run_id, count=2)
    actors.kill(doomed)
    await actors.start("worker")
    finished = await log.wait_for("run.finished", run_id=run_id, timeout_s=60)
    started = Counter(e.node for e in log.of("node.started", run_id))
    done = Counter(e.node for e in log.of("node.finished", run_id))
    assert started["n2"] == 2, "n2 ran again after the crash"
    assert done == Counter({"n1": 1, "n2": 1, "n3": 1, "n4": 1, "n5": 1})
    # The gateway finished (or was finishing) n2's call when its worker died: the redelivered step
    # is answered from the journal or joins that call, so the model is asked once per node.
    asked = Counter(e.node for e in log.of("llm.called", run_id))
    assert asked == Counter({"n1": 1, "n2": 1, "n3": 1, "n4": 1, "n5": 1})
    record = json.loads((await actors.bus.kv("ca_runs").get(run_id)).value or b"{}")
    assert [s["node"] for s in record["steps"]] == ["n1", "n2", "n3", "n4", "n5"]
    assert record["status"] == "succeeded"
    assert finished.data.state["e"] == record["state"]["e"]


@pytest.mark.timeout(120)
async def test_a_scheduler_restarted_mid_run_lets_the_run_complete(actors: Actors) -> None:
    scheduler = await actors.start("scheduler")
    await actors.start("llm-gateway")
    await actors.start("worker")
    log = await EventLog().start(actors.bus)
    run_id = await start_run(actors.bus, "five_step", {"text": "t"})
    await log.wait_for("node.started", run_id=run_id)
    actors.kill(scheduler)
    # A trigger published while the scheduler is down waits in its stream.
    await actors.bus.send(subjects.trigger("five_step"), TriggerInputs({"text": "while down"}))
    await log.wait_for("node.finished", run_id=run_id, count=5, timeout_s=30)
    assert not log.of("run.finished", run_id), "no scheduler, so nobody can have finished the run"
    await actors.start("scheduler")
    await log.wait_for("run.finished", run_id=run_id, timeout_s=30)
    second = await log.wait_for("run.finished", count=2, timeout_s=60)
    assert second.data.state["text"] == "while down"
    assert len(log.of("run.finished", run_id)) == 1


@pytest.mark.timeout(120)
async def test_two_workers_share_the_work_of_one_node(actors: Actors) -> None:
    actors.llm = "mock/200ms"
    await actors.start("scheduler")
    await actors.start("llm-gateway")
    await actors.start("worker")
    await actors.start("worker")
    log = await EventLog().start(actors.bus)
    results = await asyncio.gather(*(run_flow(actors.bus, "five_step", {"text": str(i)}) for i in range(6)))
    assert all(r["status"] == "succeeded" for r in results)
    senders = {e.sender for e in log.of("node.started")}
    assert len(senders) == 2, f"work went to {senders}"


@pytest.mark.timeout(120)
async def test_a_worker_killed_mid_map_still_yields_every_item_once_in_order(actors: Actors) -> None:
    actors.flows = ROOT / "tests" / "flows" / "map50.yaml"
    actors.llm = "mock/500ms"
    await actors.start("scheduler")
    await actors.start("llm-gateway")
    doomed = await actors.start("worker")
    log = await EventLog().start(actors.bus)
    items = [f"u{i}" for i in range(9)]
    run_id = await start_run(actors.bus, "map50", {"items": items})
    await log.wait_for("node.started", run_id=run_id, count=4)
    actors.kill(doomed)
    await actors.start("worker")
    finished = await log.wait_for("run.finished", run_id=run_id, timeout_s=90)
    done = Counter(e.data.index for e in log.of("node.finished", run_id) if e.node == "fetch")
    assert done == Counter(range(9)), "each item finished exactly once"
    pages = finished.data.state["pages"]
    assert len(pages) == 9
    assert [p.split("for: Fetch ")[1].split(" ")[0] for p in pages] == items


@pytest.mark.timeout(120)
async def test_a_worker_frozen_past_ack_wait_loses_its_step_to_another_and_publishes_nothing_on_waking(
    actors: Actors,
) -> None:
    await actors.start("scheduler")
    await actors.start("llm-gateway")
    frozen = await actors.start("worker")
    log = await EventLog().start(actors.bus)
    live: list[Event] = []  # a plain core subscriber: sees a duplicate the events stream would drop

    async def on_event(msg: Msg) -> None:
        live.append(Event.model_validate_json(msg.data))

    await actors.bus.subscribe(subjects.EVENTS_ALL, on_event)
    run_id = await start_run(actors.bus, "five_step", {"text": "t"})
    await log.wait_for("node.started", run_id=run_id, count=2)  # n2's 700 ms call is in flight
    frozen.send_signal(signal.SIGSTOP)
    await actors.start("worker")  # AckWait is 1 s here: n2 goes to this one
    await log.wait_for("node.finished", run_id=run_id, count=2, timeout_s=60)  # n1, then n2 by the other
    frozen.send_signal(signal.SIGCONT)  # while the run goes on (n3 to n5 take 2 s)
    await log.wait_for("run.finished", run_id=run_id, timeout_s=60)
    # The woken worker holds n2's first delivery and the gateway's reply to it. Stop the other
    # worker: the next run can only finish on the woken one, after it dealt with what it held.
    actors.kill(actors.procs[-1])
    second = await start_run(actors.bus, "five_step", {"text": "after"})
    await log.wait_for("run.finished", run_id=second, timeout_s=60)
    finished_live = Counter(e.node for e in live if e.run_id == run_id and e.kind == "node.finished")
    assert finished_live == Counter({"n1": 1, "n2": 1, "n3": 1, "n4": 1, "n5": 1})
    asked = Counter(e.node for e in log.of("llm.called", run_id))
    assert asked["n2"] == 1, "the redelivered n2 reused the call its frozen worker had made"
