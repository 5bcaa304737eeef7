"""A trigger's Nats-Msg-Id is its idempotency key across a nats-server restart: a client's retry after the
first trigger was consumed (and the stream's dedup window forgot it) maps to the same run."""

from __future__ import annotations

import asyncio

from actors.launch.stack import LocalStack
from actors.runtime.runs import RunStore
from actors.scheduler.messages import TriggerInputs
from bus import EmbeddedNats, subjects, topology
from configs import Settings
from tests.conftest import SEEDS
from tests.helpers import EventLog, plans, until


async def test_a_retried_trigger_after_a_server_restart_makes_no_second_run(
    settings: Settings, nats_server: EmbeddedNats
) -> None:
    headers = {"Nats-Msg-Id": "client-key-1"}
    body = TriggerInputs({"message": "once"})
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        log = await EventLog().start(bus)
        await bus.send(subjects.trigger("echo"), body, headers=headers)
        await log.wait_for("run.finished")
        await nats_server.close()
        await nats_server.start()
        runs = RunStore(bus.kv(topology.RUNS))

        async def listed() -> list[str]:
            try:
                return [r.run_id for r in await runs.list() if r.inputs == {"message": "once"}]
            except Exception:  # noqa: BLE001 - the connection is still coming back
                return []

        first = await until(listed, "the bus is back and the run is listed")
        await bus.send(subjects.trigger("echo"), body, headers=headers)  # the client's retry
        await bus.send(subjects.trigger("echo"), TriggerInputs({"message": "other"}))
        await until(
            lambda: any(r.state.get("message") == "other" for r in [e.data for e in log.of("run.finished")]),
            "a later trigger ran (so the retry was handled before it)",
        )
        await asyncio.sleep(1.0)
        again = await listed()
    assert again == first
    assert len(first) == 1
