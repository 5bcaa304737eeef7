"""The Bus on a real nats-server: requests and answers as models, scatter-gather, stream replays, consumers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus import (
    BadReplyError,
    Bus,
    DeadLetter,
    EmbeddedNats,
    Empty,
    NoResponderError,
    RequestTimeoutError,
    Role,
    SparseWireModel,
    WireModel,
    WorkItem,
    subjects,
    topology,
)
from tests.helpers import outside_client


class Question(WireModel):
    text: str


class Answer(SparseWireModel):
    omit_defaults = frozenset({"error"})

    text: str = ""
    error: str | None = None


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    async with Bus(nats_server.url, name="test-bus", credentials=nats_server.credentials(Role.ADMIN)) as connected:
        yield connected


async def test_a_request_gets_its_answer_as_the_reply_model(bus: Bus) -> None:
    async def serve(msg: Msg) -> None:
        asked = Question.model_validate_json(msg.data)
        await bus.respond(msg, Answer(text=asked.text.upper()))

    await bus.subscribe("test.echo", serve)
    answer = await bus.request("test.echo", Question(text="hi"), Answer, timeout_s=5)
    assert answer == Answer(text="HI")


async def test_an_answer_leaves_out_the_fields_at_their_default_on_the_wire(
    bus: Bus, nats_server: EmbeddedNats
) -> None:
    async def serve(msg: Msg) -> None:
        await bus.respond(msg, Answer(text="ok") if msg.data == b"{}" else Answer(error="no"))

    await bus.subscribe("test.sparse", serve)
    async with outside_client(nats_server.url, nats_server.auth_file) as nc:
        assert json.loads((await nc.request("test.sparse", b"{}", timeout=5)).data) == {"text": "ok"}
        assert json.loads((await nc.request("test.sparse", b"[]", timeout=5)).data) == {"text": "", "error": "no"}


async def test_a_request_nobody_serves_fails_at_once_naming_the_subject(bus: Bus) -> None:
    with pytest.raises(NoResponderError, match=r"subject test\.nobody"):
        await bus.request("test.nobody", Empty(), Answer, timeout_s=5)


async def test_a_request_that_is_not_answered_in_time_is_a_timeout_naming_the_subject(bus: Bus) -> None:
    async def never(msg: Msg) -> None:
        return

    await bus.subscribe("test.silent", never)
    with pytest.raises(RequestTimeoutError, match=r"subject test\.silent") as caught:
        await bus.request("test.silent", Empty(), Answer, timeout_s=0.2)
    assert isinstance(caught.value, TimeoutError)


async def test_an_answer_of_the_wrong_shape_is_a_bad_reply(bus: Bus) -> None:
    async def wrong(msg: Msg) -> None:
        await msg.respond(b'{"text": ["not", "a", "string"]}')

    await bus.subscribe("test.wrong", wrong)
    with pytest.raises(BadReplyError, match="not a valid Answer: text"):
        await bus.request("test.wrong", Empty(), Answer, timeout_s=5)


async def test_answering_a_plain_publish_does_nothing(bus: Bus) -> None:
    answered = asyncio.Event()

    async def serve(msg: Msg) -> None:
        await bus.respond(msg, Answer(text="nobody asked"))
        answered.set()

    await bus.subscribe("test.plain", serve)
    await bus.send("test.plain", Question(text="fire and forget"))
    await asyncio.wait_for(answered.wait(), timeout=5)


async def test_gather_collects_the_valid_answers_of_everyone_listening(nats_server: EmbeddedNats, bus: Bus) -> None:
    async with (
        Bus(nats_server.url, name="a", credentials=nats_server.credentials(Role.ADMIN)) as a,
        Bus(nats_server.url, name="b", credentials=nats_server.credentials(Role.ADMIN)) as b,
    ):
        for other, text in ((a, "from a"), (b, "from b")):

            async def serve(msg: Msg, other: Bus = other, text: str = text) -> None:
                await other.respond(msg, Answer(text=text))

            await other.subscribe("test.all", serve)

        async def garbage(msg: Msg) -> None:
            await msg.respond(b"not json")

        await bus.subscribe("test.all", garbage)
        await a.flush()
        await b.flush()
        answers = await bus.gather("test.all", Empty(), Answer, wait_s=0.5)
    assert sorted(x.text for x in answers) == ["from a", "from b"]


def _letter(run_id: str, n: int) -> DeadLetter:
    work = WorkItem(run_id=run_id, flow="f", plan_version="v", node="n", index=n, state={})
    return DeadLetter(run_id=run_id, flow="f", node="n", step_id=work.step_id, error=f"boom {n}", work=work)


async def test_a_replay_reads_what_the_stream_holds_from_the_first_message_skipping_invalid_ones(
    bus: Bus, nats_server: EmbeddedNats
) -> None:
    subject = subjects.dead_letters("r1")
    for n in range(3):
        await bus.publish(subject, _letter("r1", n))
    async with outside_client(nats_server.url, nats_server.auth_file) as nc:
        await nc.jetstream().publish(subject, b'{"not": "a dead letter"}')
    await bus.publish(subject, _letter("r1", 3))

    async with bus.replay(subject, DeadLetter) as replay:
        letters = await replay.stored(timeout_s=10)
    assert [d.error for d in letters] == ["boom 0", "boom 1", "boom 2", "boom 3"]

    async with bus.replay(subjects.dead_letters("nothing-here"), DeadLetter) as replay:
        assert await replay.stored(timeout_s=10, idle_s=0.2) == []


async def test_a_replay_follows_messages_published_after_it_started(bus: Bus) -> None:
    subject = subjects.dead_letters("r2")
    async with bus.replay(subject, DeadLetter) as replay:
        assert await replay.next(timeout_s=0.1) is None
        await bus.publish(subject, _letter("r2", 7))
        letter = await replay.next(timeout_s=10)
    assert letter is not None
    assert letter.error == "boom 7"


async def test_a_replay_from_a_stream_sequence_starts_at_that_message_and_gives_each_ones_sequence(bus: Bus) -> None:
    subject = subjects.dead_letters("r4")
    for n in range(4):
        await bus.publish(subject, _letter("r4", n))
    async with bus.replay(subject, DeadLetter) as replay:
        entries = [await replay.next_entry(timeout_s=10) for _ in range(4)]
    seqs = [e[0] for e in entries if e is not None]
    assert len(seqs) == 4
    assert seqs == sorted(seqs)
    assert await bus.last_sequence(topology.DLQ) == seqs[-1]
    async with bus.replay(subject, DeadLetter, start_seq=seqs[2]) as replay:
        rest = [await replay.next_entry(timeout_s=10) for _ in range(2)]
        assert await replay.next_entry(timeout_s=0.2) is None
    assert [(e[0], e[1].error) for e in rest if e is not None] == [(seqs[2], "boom 2"), (seqs[3], "boom 3")]
    async with bus.replay(subject, DeadLetter, new_only=True) as replay:
        assert await replay.next_entry(timeout_s=0.2) is None
        await bus.publish(subject, _letter("r4", 9))
        new = await replay.next_entry(timeout_s=10)
    assert new is not None
    assert new[1].error == "boom 9"


async def test_a_pull_subscription_is_closed_with_the_bus_and_its_consumer_can_be_deleted(
    nats_server: EmbeddedNats,
) -> None:
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=5)
    bus = await Bus(nats_server.url, name="puller", credentials=nats_server.credentials(Role.ADMIN)).connect()
    subject = subjects.dead_letters("r3")
    sub = await bus.pull_subscribe(subject, durable="test-puller", stream=topology.DLQ, config=config)
    await bus.publish(subject, _letter("r3", 1))
    (msg,) = await sub.fetch(1, timeout=5)
    await msg.ack()
    # Closing unsubscribes the pull subscription first: a drain with one open would hang.
    await asyncio.wait_for(bus.close(), timeout=10)
    async with Bus(nats_server.url, name="cleaner", credentials=nats_server.credentials(Role.ADMIN)) as cleaner:
        assert await cleaner.delete_consumer(topology.DLQ, "test-puller") is True
        assert await cleaner.delete_consumer(topology.DLQ, "test-puller") is False
