"""`consume` on a real nats-server: the concurrency cap holds under bursts, and consumers follow their config."""

from __future__ import annotations

import asyncio
import random

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.runtime.consume import InFlight, consume
from bus import Bus, DeadLetter, EmbeddedNats, Role, WorkItem, subjects, topology


def _config(ack_wait_s: float) -> ConsumerConfig:
    return ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=ack_wait_s)


def _letter(run_id: str, n: int) -> DeadLetter:
    work = WorkItem(run_id=run_id, flow="f", plan_version="v", node="n", index=n, state={})
    return DeadLetter(run_id=run_id, flow="f", node="n", step_id=f"s{n}", error=f"e{n}", work=work)


async def test_handlers_in_flight_never_exceed_the_cap_under_bursts(nats_server: EmbeddedNats) -> None:
    cap, bursts, per_burst = 3, 5, 40
    running = peak = 0
    handled: list[str] = []
    gauge = InFlight()
    gauge_peak = 0
    all_handled = asyncio.Event()

    async def handler(msg: Msg) -> None:
        nonlocal running, peak, gauge_peak
        running += 1
        peak = max(peak, running)
        gauge_peak = max(gauge_peak, gauge.count)
        await asyncio.sleep(random.uniform(0.001, 0.02))
        handled.append(DeadLetter.model_validate_json(msg.data).step_id)
        running -= 1
        if len(handled) == bursts * per_burst:
            all_handled.set()

    async with Bus(nats_server.url, name="burst", credentials=nats_server.credentials(Role.ADMIN)) as bus:
        subject = subjects.dead_letters("burst")
        sub = await bus.pull_subscribe(subject, durable="burst", stream=topology.DLQ, config=_config(5))
        stopping = asyncio.Event()
        task = asyncio.create_task(
            consume(sub, handler, max_concurrency=cap, ack_wait_s=5, stopping=stopping, name="burst", in_flight=gauge)
        )
        total = 0
        for _ in range(bursts):
            await asyncio.gather(*(bus.publish(subject, _letter("burst", total + i)) for i in range(per_burst)))
            total += per_burst
            # Idle long enough for pull requests to expire, so late replies to them pile up client-side.
            await asyncio.sleep(0.7)
        await asyncio.wait_for(all_handled.wait(), timeout=30)
        stopping.set()
        await task
    assert peak <= cap
    assert gauge_peak <= cap
    assert sorted(handled) == sorted(f"s{n}" for n in range(total))  # each once


async def test_an_existing_consumer_takes_the_ack_wait_it_is_subscribed_with(nats_server: EmbeddedNats) -> None:
    async with Bus(nats_server.url, name="ackwait", credentials=nats_server.credentials(Role.ADMIN)) as bus:
        subject = subjects.dead_letters("aw")
        await bus.pull_subscribe(subject, durable="aw", stream=topology.DLQ, config=_config(30))
        await bus.pull_subscribe(subject, durable="aw", stream=topology.DLQ, config=_config(4))
        assert await bus.consumer_ack_wait(topology.DLQ, "aw") == 4
