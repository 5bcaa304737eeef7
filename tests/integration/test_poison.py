"""Poison messages end once: each hostile trigger is one `run.rejected`, a consumer gives up after bounded
deliveries (dead letter, then term), and a pile of poisons never stops the next good trigger."""

from __future__ import annotations

import asyncio
import json

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.launch.stack import LocalStack
from actors.runtime.consume import consume, dead_letter_to
from bus import Bus, Role, Undeliverable, subjects, topology
from configs import Settings
from tests.conftest import SEEDS
from tests.helpers import EventLog, outside_client, plans, run_flow

# What an attacker or a broken client publishes; each one used to be nak'ed and redelivered for ever.
POISONS: dict[str, bytes] = {
    "a 5,000-digit integer": b'{"message": ' + b"9" * 5000 + b"}",
    "invalid UTF-8 inside a string": b'{"message": "caf\xc3\x28 \xff\xfe"}',
    "a list nested 100,000 deep": b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a dict nested 900 deep": b'{"message": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}",
    "a lone surrogate escape": b'{"message": "\\ud800"}',
    "a huge exponent": b'{"message": 1e' + b"9" * 400 + b"}",
}


async def test_each_poison_trigger_is_rejected_exactly_once_and_a_normal_trigger_still_runs(
    settings: Settings,
) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        log = await EventLog().start(bus)
        async with outside_client(
            stack.url, settings.nats_auth_file
        ) as nc:  # a plain publish: CA_TRIGGERS stores it (no_ack)
            for payload in POISONS.values():
                await nc.publish(subjects.trigger("echo"), payload)
            await nc.flush()
        await log.wait_for("run.rejected", count=len(POISONS))
        good = await run_flow(bus, "echo", {"message": "after the poisons"})
        # Time for any redelivery to show up as a second rejection (there must be none).
        await asyncio.sleep(settings.ack_wait_s + 1)
    assert good["status"] == "succeeded"
    rejected = log.of("run.rejected")
    assert len(rejected) == len(POISONS), [e.data.error for e in rejected]
    assert len({e.run_id for e in rejected}) == len(POISONS)
    reasons = " | ".join(e.data.error or "" for e in rejected)
    for expected in ("100 are accepted", "not valid UTF-8", "nested more than 64 levels", "lone surrogate"):
        assert expected in reasons, reasons


async def test_more_poisons_than_max_ack_pending_do_not_stop_new_triggers(settings: Settings) -> None:
    small = [POISONS["a 5,000-digit integer"], POISONS["invalid UTF-8 inside a string"], b'{"message": ' + b"[" * 70]
    count = 1_050  # above JetStream's default max_ack_pending (1,000) of the trigger consumer
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        log = await EventLog().start(bus)
        async with outside_client(stack.url, settings.nats_auth_file) as nc:
            for n in range(count):
                await nc.publish(subjects.trigger("echo"), small[n % len(small)])
            await nc.flush()
        good = await run_flow(bus, "echo", {"message": "still served"}, timeout_s=60)
        await log.wait_for("run.rejected", count=count, timeout_s=60)
    assert good["status"] == "succeeded"
    assert len(log.of("run.rejected")) == count


async def test_a_message_no_handler_gets_through_is_dead_lettered_once_after_max_deliver_then_terminated(
    settings: Settings,
) -> None:
    durable = "poison-test"
    deliveries: list[int] = []
    async with Bus.of(settings, Role.ADMIN, name="poison-test") as bus:
        sub = await bus.pull_subscribe(
            subjects.ctl("poisoned"),
            durable=durable,
            stream=topology.CTL,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, max_deliver=-1),
        )

        async def always_fails(msg: Msg) -> None:
            deliveries.append(msg.metadata.num_delivered or 0)
            json.loads(msg.data)  # RecursionError: not an error the handler knows

        async with outside_client(settings.nats_url, settings.nats_auth_file) as nc:
            await nc.jetstream().publish(subjects.ctl("poisoned"), b"[" * 100_000)
        stopping = asyncio.Event()
        consuming = asyncio.create_task(
            consume(
                sub,
                always_fails,
                max_concurrency=4,
                ack_wait_s=settings.ack_wait_s,
                stopping=stopping,
                name=durable,
                max_deliver=3,
                on_give_up=dead_letter_to(bus, durable),
            )
        )
        async with bus.replay(subjects.dead_messages(durable), Undeliverable) as replay:
            letter = await replay.next(timeout_s=30)
        # Past the back-off of another delivery (0.5 s, 1 s): a terminated message never comes back.
        await asyncio.sleep(3 * settings.ack_wait_s)
        stopping.set()
        await consuming
    assert deliveries == [1, 2, 3]
    assert letter is not None
    assert letter.consumer == durable
    assert letter.deliveries == 3
    assert "RecursionError" in letter.error
    assert letter.body_bytes == 100_000
    assert len(letter.body) <= Undeliverable.BODY_CHARS


async def test_request_actors_answer_each_poison_with_an_error_and_keep_serving(settings: Settings) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        async with outside_client(stack.url, settings.nats_auth_file) as nc:
            for subject in (subjects.LLM_COMPLETE, subjects.MEMORY_READ, subjects.MEMORY_WRITE):
                for name, payload in POISONS.items():
                    reply = json.loads((await nc.request(subject, payload, timeout=10)).data)
                    assert reply.get("error"), (subject, name, reply)
        good = await run_flow(bus, "echo", {"message": "still answered"})
    assert good["status"] == "succeeded"
