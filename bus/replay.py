"""Reading what a stream holds on one subject, in order, from its first message (an ordered consumer).

A run's events and its dead letters are read this way: `Bus.replay(subject, Event)` gives a `Replay`
to use with ``async with``; `next` waits for the next message (following a run live), `stored` reads
everything the stream holds now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

import structlog
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from configs.errors import BusError

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

Opener = Callable[[], Awaitable[JetStreamContext.PushSubscription]]
Closer = Callable[[JetStreamContext.PushSubscription], Awaitable[None]]


class Replay(Generic[M]):
    """The messages of one subject as `M`, oldest first; those that are not valid `M`s are skipped (logged)."""

    def __init__(self, subject: str, model: type[M], *, open_sub: Opener, close_sub: Closer) -> None:
        self.subject = subject
        self._model = model
        self._open = open_sub
        self._close = close_sub
        self._sub: JetStreamContext.PushSubscription | None = None

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> Self:
        """Start reading (``async with`` does it).

        Raises:
            BusError: the consumer could not be created.
        """
        if self._sub is None:
            try:
                self._sub = await self._open()
            except NatsError as exc:
                raise BusError(f"cannot read the stream: {exc}", subject=self.subject) from exc
        return self

    async def close(self) -> None:
        """Stop reading. Idempotent."""
        sub, self._sub = self._sub, None
        if sub is not None:
            await self._close(sub)

    async def next(self, timeout_s: float | None = None) -> M | None:
        """The next message, or None when none comes within `timeout_s` (None: wait as long as it takes).

        Raises:
            BusError: not open, or the connection closed.
        """
        entry = await self.next_entry(timeout_s)
        return None if entry is None else entry[1]

    async def next_entry(self, timeout_s: float | None = None) -> tuple[int, M] | None:
        """The next message with its stream sequence, or None when none comes within `timeout_s`.

        Raises:
            BusError: not open, or the connection closed.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            msg = await self._receive(remaining)
            if msg is None:
                return None
            message = self._decode(msg)
            if message is not None:
                return msg.metadata.sequence.stream, message

    async def stored(self, *, timeout_s: float, idle_s: float | None = None) -> list[M]:
        """Every message the stream holds on the subject now (none published later), in order.

        Args:
            timeout_s: Give up after this long.
            idle_s: Also stop when no message comes for this long: how a subject with no messages at all
                is told apart from a slow stream.

        Raises:
            TimeoutError: the stream did not hand them over within `timeout_s`.
            BusError: not open, or the connection closed.
        """
        found: list[M] = []
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await self._receive(idle_s)
                if msg is None:
                    return found
                message = self._decode(msg)
                if message is not None:
                    found.append(message)
                if msg.metadata.num_pending == 0:
                    return found

    async def _receive(self, timeout_s: float | None) -> Msg | None:
        if self._sub is None:
            raise BusError("the replay is not open", subject=self.subject)
        try:
            return await self._sub.next_msg(timeout=timeout_s)
        except NatsTimeoutError:
            return None
        except NatsError as exc:
            raise BusError(f"reading the stream failed: {exc}", subject=self.subject) from exc

    def _decode(self, msg: Msg) -> M | None:
        try:
            return self._model.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("bus.replay_skipped", subject=msg.subject, expected=self._model.__name__, error=str(exc))
            return None
