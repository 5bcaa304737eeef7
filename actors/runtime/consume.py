"""Run a handler over a JetStream pull subscription with bounded concurrency.

A handler settles its message by returning (ack), raising `Retry` (nak with a delay: redelivered
later, maybe to another worker), raising `Drop` (term: never redelivered) or raising `Abandon` (a
later delivery owns the message: leave it alone). Any other exception
naks with an exponential back-off, and only `max_deliver` times: a message no handler can get through
(a poison message, a bug) is then given up — handed to `on_give_up` (a rejection, a dead letter) and
terminated — instead of coming back for ever with a traceback each time (the traceback is logged on
the first and the last delivery, one line in between). While a handler runs, the message gets
in-progress heartbeats, so a long LLM call is not mistaken for a crashed worker; a worker that really
dies or freezes stops heartbeating and JetStream redelivers its work after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from bus import Bus, Undeliverable, subjects

log = structlog.get_logger(__name__)

Handler = Callable[[Msg], Awaitable[None]]
# Called once with a message and what went wrong, when its handler failed on its last allowed delivery.
GiveUp = Callable[[Msg, str], Awaitable[None]]

# Most messages asked for in one pull request.
FETCH_BATCH = 32
# A held message is heartbeaten every this fraction of its AckWait: four beats may be missed (a
# loop busy for a moment) before JetStream hands the message to another consumer.
HEARTBEAT_FRACTION = 0.2
# A handler still holding its message after this long is said to be stalled (once): it may be waiting
# on something that cannot answer, and its heartbeats keep the message from anyone else.
STALLED_S = 300.0


class Retry(Exception):
    """Nak the message: redeliver it after `delay_s`.

    Deliberately outside the `CaActorsError` tree: code that reports failures by catching that root
    must let this reach the runtime.
    """

    def __init__(self, reason: str, delay_s: float = 1.0) -> None:
        self.reason = reason
        self.delay_s = delay_s
        super().__init__(reason)


class Drop(Exception):
    """Terminate the message: it can never succeed, do not redeliver it (outside the error tree, as `Retry`)."""


class Abandon(Exception):
    """Leave the message alone: a later delivery of it (to another worker) owns it now, so this one
    neither acks nor naks it (outside the error tree, as `Retry`)."""


class InFlight:
    """How many messages the handlers of one process are working on (its load, for the registry)."""

    def __init__(self) -> None:
        self.count = 0


async def consume(
    sub: JetStreamContext.PullSubscription,
    handler: Handler,
    *,
    max_concurrency: int,
    ack_wait_s: float,
    stopping: asyncio.Event,
    name: str,
    in_flight: InFlight | None = None,
    max_deliver: int = 10,
    on_give_up: GiveUp | None = None,
) -> None:
    """Fetch and handle messages until `stopping` is set, then wait for handlers in flight.

    At most `max_concurrency` handlers run at once: a fetch asks for no more messages than there are
    free slots (and at most `FETCH_BATCH`), so the rest stay on the server for other workers; a
    message fetched beyond the cap waits for a slot.
    A handler that fails (other than by `Retry`/`Drop`) on the `max_deliver`-th delivery of a message
    gives the message up: `on_give_up(msg, error)`, then term.
    """
    held = 0  # messages fetched and not settled yet: at most `max_concurrency` (see `_fetch`)
    slots = asyncio.Semaphore(max_concurrency)
    slot_freed = asyncio.Event()
    inflight: set[asyncio.Task[None]] = set()
    gauge = in_flight or InFlight()

    def release(task: asyncio.Task[None]) -> None:
        nonlocal held
        inflight.discard(task)
        held -= 1
        slot_freed.set()

    try:
        while not stopping.is_set():
            free = max_concurrency - held
            if free <= 0:
                slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot_freed.wait(), timeout=0.5)
                continue
            try:
                msgs = await sub.fetch(min(free, FETCH_BATCH), timeout=0.5)
            except (NatsTimeoutError, TimeoutError):
                continue
            except ConnectionClosedError:
                if not stopping.is_set():
                    log.warning("consume.connection_closed", consumer=name)
                break  # closed for good (a reconnect in progress raises other errors)
            except Exception as exc:  # noqa: BLE001 - e.g. a reconnect in progress: try again
                if not stopping.is_set():
                    log.warning("consume.fetch_failed", consumer=name, error=str(exc))
                    await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                held += 1
                task = asyncio.create_task(
                    _settle(msg, handler, ack_wait_s, name, slots, gauge, (max_deliver, on_give_up))
                )
                inflight.add(task)
                task.add_done_callback(release)
    finally:
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)


async def _settle(
    msg: Msg,
    handler: Handler,
    ack_wait_s: float,
    name: str,
    slots: asyncio.Semaphore,
    gauge: InFlight,
    giving_up: tuple[int, GiveUp | None],
) -> None:
    # nats-py's fetch may hand back more messages than asked for (replies to earlier pull requests
    # that timed out arrive late and are returned with the next batch): those wait here for a slot,
    # heartbeating so they are not redelivered meanwhile, and the handlers in flight never exceed the cap.
    beat = asyncio.create_task(_heartbeat(msg, ack_wait_s, name))
    try:
        async with slots:
            gauge.count += 1
            try:
                await _handle(msg, handler, name, *giving_up)
            finally:
                gauge.count -= 1
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


async def _handle(msg: Msg, handler: Handler, name: str, max_deliver: int, on_give_up: GiveUp | None) -> None:
    try:
        await handler(msg)
    except Retry as r:
        log.info("consume.retry", consumer=name, reason=r.reason, delay_s=r.delay_s)
        await _quietly(msg.nak(delay=r.delay_s))
    except Drop as d:
        log.warning("consume.drop", consumer=name, reason=str(d))
        await _quietly(msg.term())
    except Abandon as a:
        log.warning("consume.abandoned", consumer=name, reason=str(a))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure: retried with back-off, then given up
        await _failed(msg, exc, name, max_deliver, on_give_up)
    else:
        await _quietly(msg.ack())


def deliveries(msg: Msg) -> int:
    """How many times JetStream has delivered `msg` (1 on the first delivery)."""
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:  # noqa: BLE001 - not a JetStream message (no metadata): its first delivery
        return 1


def backoff_s(delivery: int) -> float:
    """Delay before the next delivery of a message whose handler failed: 0.5 s doubling, at most 30 s."""
    return float(min(0.5 * 2 ** (delivery - 1), 30.0))


async def _failed(msg: Msg, exc: Exception, name: str, max_deliver: int, on_give_up: GiveUp | None) -> None:
    delivery = deliveries(msg)
    error = f"{type(exc).__name__}: {str(exc)[:500]}"
    if delivery < max_deliver:
        if delivery == 1:
            log.exception("consume.handler_failed", consumer=name, delivery=delivery, max_deliver=max_deliver)
        else:
            log.warning("consume.handler_failed", consumer=name, delivery=delivery, error=error)
        await _quietly(msg.nak(delay=backoff_s(delivery)))
        return
    log.error("consume.gave_up", consumer=name, delivery=delivery, error=error, exc_info=exc)
    if on_give_up is not None:
        try:
            await on_give_up(msg, f"{error} (after {delivery} deliveries)")
        except asyncio.CancelledError:
            raise
        except Exception as problem:  # noqa: BLE001 - the message still ends here: it must not loop
            log.error("consume.give_up_failed", consumer=name, error=f"{type(problem).__name__}: {problem}")
    await _quietly(msg.term())


async def _heartbeat(msg: Msg, ack_wait_s: float, name: str) -> None:
    held_since = time.monotonic()
    warned = False
    while True:
        await asyncio.sleep(max(ack_wait_s * HEARTBEAT_FRACTION, 0.05))
        await _quietly(msg.in_progress())
        held = time.monotonic() - held_since
        if not warned and held > STALLED_S:
            log.warning("consume.handler_stalled", consumer=name, held_s=round(held), subject=msg.subject)
            warned = True


async def _quietly(op: Awaitable[None]) -> None:
    try:
        await op
    except Exception as exc:  # noqa: BLE001 - the message will be redelivered if this did not reach the server
        log.warning("consume.settle_failed", error=str(exc))


def dead_letter_to(bus: Bus, consumer: str) -> GiveUp:
    """A `GiveUp` that keeps the message on ``ca.dlq.<consumer>`` (stream CA_DLQ, 7 days) for inspection."""

    async def keep(msg: Msg, error: str) -> None:
        try:
            seq = int(msg.metadata.sequence.stream)
        except Exception:  # noqa: BLE001 - not a JetStream message
            seq = 0
        letter = Undeliverable.of(
            consumer=consumer,
            subject=msg.subject,
            data=msg.data,
            error=error,
            stream_seq=seq,
            deliveries=deliveries(msg),
        )
        await bus.publish(subjects.dead_messages(consumer), letter, msg_id=f"{consumer}.{seq}" if seq else None)

    return keep
